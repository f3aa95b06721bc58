"""Object storage behind one interface: a local folder (embedded default) or any S3 endpoint.

Keys are always made by the server (`shared.keys`); user file names never reach a key.
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlparse

from inferq.shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
S3_MIN_PART = 5 * 1024 * 1024


class StorageError(RuntimeError):
    """Storage could not be reached or refused the operation."""


class ObjectNotFound(StorageError):
    pass


class StorageUnavailable(StorageError):
    """The endpoint could not be reached or is overloaded: retrying later may work."""


# S3 error codes that mean "not now" rather than "never".
S3_RETRYABLE_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500", "502", "503", "504"}
)


class Storage(Protocol):
    def put_stream(self, key: str, stream: IO[bytes]) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def iter_bytes(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...
    def read_bytes(self, key: str) -> bytes: ...
    def size(self, key: str) -> int: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def concat(self, keys: builtins.list[str], dest: str) -> int: ...
    def download_to(self, key: str, path: Path) -> None: ...
    def presigned_url(self, key: str, expires: int = 300) -> str | None: ...
    def ping(self) -> None: ...


def delete_prefix(storage: Storage, prefix: str) -> int:
    n = 0
    for key in list(storage.list(prefix)):
        storage.delete(key)
        n += 1
    return n


class LocalStorage:
    """A folder on disk. Writes go to a temp file then rename, so readers never see half an object."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"key escapes the storage root: {key!r}")
        return path

    def _write(self, key: str, chunks: Iterable[bytes]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_stream(self, key: str, stream: IO[bytes]) -> None:
        self._write(key, iter(lambda: stream.read(CHUNK), b""))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, [data])

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(key)
        try:
            f = path.open("rb")
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e
        with f:
            f.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_bytes(key))

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    yield key

    def concat(self, keys: builtins.list[str], dest: str) -> int:
        def chunks() -> Iterator[bytes]:
            for key in keys:
                yield from self.iter_bytes(key)

        self._write(dest, chunks())
        return self.size(dest)

    def download_to(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    def presigned_url(self, key: str, expires: int = 300) -> str | None:
        return None

    def ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"storage folder is not writable: {self.root}")


class S3Storage:
    """Any S3 endpoint (AWS, MinIO, moto server) through boto3.

    With `sse` (`AES256` or `aws:kms`, optionally a KMS key id) every object this class writes asks for
    server-side encryption: single puts, uploads (plain and multipart) and joined multipart copies.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        region: str | None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        # Arguments of every request that creates an object (PutObject, CreateMultipartUpload).
        self.write_args: dict[str, str] = {}
        if sse is not None:
            self.write_args["ServerSideEncryption"] = sse
            if sse_kms_key_id is not None:
                self.write_args["SSEKMSKeyId"] = sse_kms_key_id
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60
            ),
        )

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(str(kwargs.get("Key", ""))) from e
            if code in S3_RETRYABLE_CODES:
                raise StorageUnavailable(f"S3 unavailable ({code}): {e}") from e
            raise StorageError(f"S3 {code}: {e}") from e
        except BotoCoreError as e:
            raise StorageUnavailable(f"S3 unreachable: {e}") from e

    def put_stream(self, key: str, stream: IO[bytes]) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)
        # s3transfer reads up to 10 parts ahead into memory by default (10 x 8 MiB): a large upload
        # (the API's file uploads, the finalize join) then holds ~110 MiB. One part per upload thread
        # keeps the uploads as busy and halves that (benchmarks/memory_flat.py, api_memory.py).
        config.max_in_memory_upload_chunks = config.max_request_concurrency
        self._call(
            self.client.upload_fileobj,
            stream,
            self.bucket,
            self._k(key),
            ExtraArgs=dict(self.write_args),
            Config=config,
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(self.client.put_object, Bucket=self.bucket, Key=self._k(key), Body=data, **self.write_args)

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if start or end is not None:
            if end is not None and end <= start:
                return
            kwargs["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        from botocore.exceptions import BotoCoreError

        body = self._call(self.client.get_object, **kwargs)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        except BotoCoreError as e:  # the connection broke while the body streamed
            raise StorageUnavailable(f"S3 unreachable: {e}") from e
        finally:
            body.close()

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_bytes(key))

    def size(self, key: str) -> int:
        head = self._call(self.client.head_object, Bucket=self.bucket, Key=self._k(key))
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Bucket=self.bucket, Key=self._k(key))

    def list(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix))))
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"][len(self.prefix) :]

    def concat(self, keys: builtins.list[str], dest: str) -> int:
        """Join objects server-side with multipart copy when every piece but the last is >= 5 MiB."""
        sizes: builtins.list[int] = [self.size(k) for k in keys]
        nonempty = [(k, s) for k, s in zip(keys, sizes, strict=True) if s > 0]
        if len(nonempty) <= 1 or any(s < S3_MIN_PART for _, s in nonempty[:-1]):
            return self._concat_streaming([k for k, _ in nonempty], dest)
        upload = self._call(
            self.client.create_multipart_upload, Bucket=self.bucket, Key=self._k(dest), **self.write_args
        )
        upload_id = upload["UploadId"]
        try:
            parts: builtins.list[dict[str, Any]] = []
            for n, (key, _) in enumerate(nonempty, start=1):
                res = self._call(
                    self.client.upload_part_copy,
                    Bucket=self.bucket,
                    Key=self._k(dest),
                    UploadId=upload_id,
                    PartNumber=n,
                    CopySource={"Bucket": self.bucket, "Key": self._k(key)},
                )
                parts.append({"PartNumber": n, "ETag": res["CopyPartResult"]["ETag"]})
            self._call(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=self._k(dest),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._k(dest), UploadId=upload_id)
            raise
        return sum(s for _, s in nonempty)

    def _concat_streaming(self, keys: builtins.list[str], dest: str) -> int:
        with tempfile.TemporaryFile() as tmp:
            for key in keys:
                for chunk in self.iter_bytes(key):
                    tmp.write(chunk)
            size = tmp.tell()
            tmp.seek(0)
            self.put_stream(dest, tmp)
        return size

    def download_to(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._call(self.client.download_file, self.bucket, self._k(key), str(path))

    def presigned_url(self, key: str, expires: int = 300) -> str | None:
        return str(
            self._call(
                self.client.generate_presigned_url,
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._k(key)},
                ExpiresIn=expires,
            )
        )

    def ping(self) -> None:
        self._call(self.client.head_bucket, Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        if not self.exists_bucket():
            self._call(self.client.create_bucket, Bucket=self.bucket)

    def exists_bucket(self) -> bool:
        try:
            self.ping()
        except StorageError:
            return False
        return True


_cache: dict[tuple[str, str | None, str | None, str | None], Storage] = {}


def storage_from_url(
    url: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(parsed.path))
    if parsed.scheme == "s3":
        return S3Storage(parsed.netloc, parsed.path, endpoint_url, region, sse, sse_kms_key_id)
    raise StorageError(f"unsupported storage URL {url!r} (use file:///path or s3://bucket/prefix)")


def get_storage(settings: Settings | None = None) -> Storage:
    settings = settings or get_settings()
    cache_key = (settings.storage_url, settings.s3_endpoint_url, settings.s3_sse, settings.s3_sse_kms_key_id)
    storage = _cache.get(cache_key)
    if storage is None:
        storage = storage_from_url(
            settings.storage_url,
            settings.s3_endpoint_url,
            settings.s3_region,
            settings.s3_sse,
            settings.s3_sse_kms_key_id,
        )
        _cache[cache_key] = storage
    return storage
