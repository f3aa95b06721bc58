"""A typed Python client for the inferq HTTP API (see docs/API.md).

    from inferq.client import Client

    with Client("http://127.0.0.1:8000", api_key) as client:
        job = client.submit_file("sentences.jsonl", task="embedding", model="minilm-l6")
        job = client.wait(job.id)
        client.download(job.id, "embeddings.jsonl")

Every API error raises `ApiError` (or one of its subclasses by status) with the server's stable
`code`, its `message` and the offending `field`; a server that cannot be reached raises
`ApiConnectionError`. Idempotent requests (GETs, and POSTs that carry an Idempotency-Key) are
retried a few times on connection errors and 503 answers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import httpx
import orjson

from inferq.contract_types import JobCreate

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "expired"})
RETRIES = 3
BACKOFF_SECONDS = 0.5
CHUNK_BYTES = 1024 * 1024
USER_AGENT = "inferq-client/0.1"

_CONTENT_TYPES = {
    ".jsonl": "application/jsonl",
    ".ndjson": "application/jsonl",
    ".json": "application/jsonl",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
}


# Errors ---------------------------------------------------------------------------------------


class ClientError(Exception):
    """Anything the client raises: it always has a machine `code` and a human `message`."""

    code = "client_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ApiConnectionError(ClientError):
    """The server could not be reached, or the connection broke before an answer came."""

    code = "connection_error"


class WaitTimeout(ClientError, TimeoutError):
    """`Client.wait` gave up before the job reached a terminal state."""

    code = "wait_timeout"

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message)
        self.job = job


class ApiError(ClientError):
    """The server answered with an error: `{"error": {"code", "message", "field"}}`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        return f"{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class InvalidRequestError(ApiError):
    """400: the request itself is invalid."""


class AuthenticationError(ApiError):
    """401: missing or unknown API key."""


class NotFoundError(ApiError):
    """404: no such id for this tenant."""


class ConflictError(ApiError):
    """409: the object's state does not allow it."""


class PayloadTooLargeError(ApiError):
    """413: over the upload limits."""


class UnsupportedMediaTypeError(ApiError):
    """415: a file type the service does not read."""


class UnprocessableError(ApiError):
    """422: the referenced content cannot serve the request."""


class RateLimitError(ApiError):
    """429: rate or quota exceeded."""


class UnavailableError(ApiError):
    """503: a dependency of the service (database, broker, storage) is down."""


_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableError,
    429: RateLimitError,
    503: UnavailableError,
}


def error_from_response(status: int, body: bytes) -> ApiError:
    """Build the ApiError for an error answer, whatever shape its body has."""
    code = f"http_{status}"
    message = httpx.codes.get_reason_phrase(status) or "error"
    field_name: str | None = None
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
        text = body.decode("utf-8", "replace").strip()
        if text:
            message = text.splitlines()[0][:200]
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        raw_field = error.get("field")
        field_name = str(raw_field) if raw_field is not None else None
    cls = _ERRORS_BY_STATUS.get(status, ApiError)
    return cls(status, code, message, field_name)


# Objects --------------------------------------------------------------------------------------


def _results_path(job_id: str, errors: bool, merged: bool) -> str:
    if errors:
        return f"/v1/jobs/{job_id}/errors"
    return f"/v1/jobs/{job_id}/results" + ("?merged=true" if merged else "")


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default


@dataclass(frozen=True)
class Progress:
    total: int | None
    completed: int
    failed: int

    @property
    def done(self) -> int:
        """Records finished either way."""
        return self.completed + self.failed

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Progress:
        data = data or {}
        total = data.get("total")
        return cls(
            total=None if total is None else _int(total),
            completed=_int(data.get("completed")),
            failed=_int(data.get("failed")),
        )


@dataclass(frozen=True)
class JobError:
    code: str
    message: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobError | None:
        if not data:
            return None
        return cls(code=str(data.get("code") or "error"), message=str(data.get("message") or ""))


@dataclass(frozen=True)
class Job:
    id: str
    type: str
    task: str | None
    status: str
    model: str | None
    input_file: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    expires_at: str | None
    progress: Progress
    output_file: str | None
    error_file: str | None
    result_model: str | None
    metrics: dict[str, Any] | None
    error: JobError | None
    metadata: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        metrics = data.get("metrics")
        metadata = data.get("metadata")
        return cls(
            id=str(data["id"]),
            type=str(data.get("type") or "predict"),
            task=_opt_str(data.get("task")),
            status=str(data.get("status") or ""),
            model=_opt_str(data.get("model")),
            input_file=_opt_str(data.get("input_file")),
            created_at=_opt_str(data.get("created_at")),
            started_at=_opt_str(data.get("started_at")),
            finished_at=_opt_str(data.get("finished_at")),
            expires_at=_opt_str(data.get("expires_at")),
            progress=Progress.from_dict(data.get("progress")),
            output_file=_opt_str(data.get("output_file")),
            error_file=_opt_str(data.get("error_file")),
            result_model=_opt_str(data.get("result_model")),
            metrics=dict(metrics) if isinstance(metrics, dict) else None,
            error=JobError.from_dict(data.get("error")),
            metadata=dict(metadata) if isinstance(metadata, dict) else {},
            raw=dict(data),
        )

    def to_dict(self) -> dict[str, Any]:
        """The job exactly as the server sent it."""
        return dict(self.raw)

    @property
    def parent_job(self) -> str | None:
        """A retry child's parent (`Client.retry`), else None."""
        return _opt_str(self.raw.get("parent_job"))

    @property
    def retry_of(self) -> str | None:
        return _opt_str(self.raw.get("retry_of"))


@dataclass(frozen=True)
class FileObject:
    id: str
    filename: str | None
    bytes: int
    purpose: str
    format: str | None
    records: int | None
    sha256: str | None
    created_at: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileObject:
        records = data.get("records")
        return cls(
            id=str(data["id"]),
            filename=_opt_str(data.get("filename")),
            bytes=_int(data.get("bytes")),
            purpose=str(data.get("purpose") or ""),
            format=_opt_str(data.get("format")),
            records=None if records is None else _int(records),
            sha256=_opt_str(data.get("sha256")),
            created_at=_opt_str(data.get("created_at")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class JobPage:
    data: list[Job]
    has_more: bool
    next_cursor: str | None


# Client ---------------------------------------------------------------------------------------


class Client:
    """One connection pool to one inferq server, authenticated as one tenant's API key."""

    def __init__(
        self,
        url: str,
        api_key: str,
        timeout: float = 60.0,
        *,
        retries: int = RETRIES,
        backoff: float = BACKOFF_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = max(1, retries)
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=self.url,
            # Without a key (""): only the endpoints that need none (/healthz, /readyz) answer.
            headers={"User-Agent": USER_AGENT, **({"Authorization": f"Bearer {api_key}"} if api_key else {})},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Transport ---------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; retry idempotent ones on connection errors and 503; raise on errors."""
        attempts = self.retries if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                request = self._http.build_request(method, path, **kwargs)
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as e:
                if attempt < attempts:
                    self._pause(attempt, f"{method} {path}: {e}")
                    continue
                raise ApiConnectionError(f"cannot reach {self.url}: {e or type(e).__name__}") from e
            if response.status_code == 503 and attempt < attempts:
                response.close()
                self._pause(attempt, f"{method} {path}: 503")
                continue
            if response.is_error:
                body = response.read()
                response.close()
                raise error_from_response(response.status_code, body)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, attempt: int, why: str) -> None:
        delay = self.backoff * 2 ** (attempt - 1)
        logger.info("retrying in %.1fs after %s", delay, why)
        time.sleep(delay)

    def _json(self, method: str, path: str, *, retry: bool | None = None, **kwargs: Any) -> Any:
        retry = method == "GET" if retry is None else retry
        response = self._send(method, path, retry=retry, **kwargs)
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as e:
            raise ApiError(
                response.status_code, "invalid_response", f"{method} {path} did not answer JSON"
            ) from e

    @contextmanager
    def _stream(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[httpx.Response]:
        response = self._send("GET", path, retry=True, stream=True, params=params)
        try:
            yield response
        except httpx.TransportError as e:
            raise ApiConnectionError(f"connection to {self.url} broke during GET {path}: {e}") from e
        finally:
            response.close()

    def _stream_to(self, path: str, dest: str | os.PathLike[str]) -> Path:
        """Stream a download to `dest` in chunks, through a temporary file renamed at the end."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            with self._stream(path) as response, partial.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    # Files ---------------------------------------------------------------------------------------

    def upload(self, path: str | os.PathLike[str], purpose: str = "input") -> FileObject:
        """Upload a local file (streamed, never read whole into memory)."""
        source = Path(path)
        content_type = _CONTENT_TYPES.get(source.suffix.lower(), "application/octet-stream")
        try:
            handle: BinaryIO = source.open("rb")
        except OSError as e:
            raise ClientError(f"cannot read {source}: {e.strerror or e}") from e
        with handle:
            data = self._json(
                "POST",
                "/v1/files",
                retry=False,
                files={"file": (source.name, handle, content_type)},
                data={"purpose": purpose},
            )
        return FileObject.from_dict(data)

    def file(self, file_id: str) -> FileObject:
        return FileObject.from_dict(self._json("GET", f"/v1/files/{file_id}"))

    def file_content(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream a file's bytes to `path`."""
        return self._stream_to(f"/v1/files/{file_id}/content", path)

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file and its bytes now; 409 while a job that has not ended reads it."""
        return dict(self._json("DELETE", f"/v1/files/{file_id}"))

    # Jobs ----------------------------------------------------------------------------------------

    def create_job(self, body: JobCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> Job:
        """POST any job body (predict, train, evaluate): `inferq.contract_types.JobCreate`, the server's
        own contract."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        data = self._json(
            "POST", "/v1/jobs", retry=idempotency_key is not None, json=dict(body), headers=headers
        )
        return Job.from_dict(data)

    def submit(
        self,
        *,
        task: str,
        model: str,
        input_file: str,
        params: Mapping[str, Any] | None = None,
        priority: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a prediction job over an uploaded file."""
        body: dict[str, Any] = {"type": "predict", "task": task, "model": model, "input_file": input_file}
        if params:
            body["params"] = dict(params)
        if priority is not None:
            body["priority"] = priority
        if metadata:
            body["metadata"] = dict(metadata)
        if webhook_url:
            body["webhook_url"] = webhook_url
        return self.create_job(body, idempotency_key=idempotency_key)

    def submit_file(
        self,
        path: str | os.PathLike[str],
        *,
        task: str,
        model: str,
        params: Mapping[str, Any] | None = None,
        priority: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Upload `path` and submit a prediction job over it."""
        uploaded = self.upload(path, purpose="input")
        return self.submit(
            task=task,
            model=model,
            input_file=uploaded.id,
            params=params,
            priority=priority,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def get(self, job_id: str) -> Job:
        return Job.from_dict(self._json("GET", f"/v1/jobs/{job_id}"))

    def list_jobs(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of the tenant's jobs, newest first."""
        query = {
            k: v
            for k, v in {"status": status, "type": type, "limit": limit, "cursor": cursor}.items()
            if v is not None
        }
        data = self._json("GET", "/v1/jobs", params=query)
        return JobPage(
            data=[Job.from_dict(item) for item in data.get("data", [])],
            has_more=bool(data.get("has_more")),
            next_cursor=_opt_str(data.get("next_cursor")),
        )

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's whole event log, in order (following list pages if the server pages it)."""
        events: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"cursor": cursor} if cursor else None
            data = self._json("GET", f"/v1/jobs/{job_id}/events", params=query)
            if isinstance(data, list):
                return events + data
            events.extend(data.get("data", []))
            cursor = _opt_str(data.get("next_cursor"))
            if not data.get("has_more") or not cursor:
                return events

    def cancel(self, job_id: str) -> Job:
        return Job.from_dict(self._json("POST", f"/v1/jobs/{job_id}/cancel", retry=False))

    def retry(self, job_id: str, only: str = "errored", *, idempotency_key: str | None = None) -> Job:
        """A child job over the job's `errored`, `expired` or `cancelled` records, with the same ids; read
        the whole with `download(job_id, path, merged=True)` or `iter_results(job_id, merged=True)`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        data = self._json(
            "POST",
            f"/v1/jobs/{job_id}/retry",
            retry=idempotency_key is not None,
            json={"only": only},
            headers=headers,
        )
        return Job.from_dict(data)

    def delete_job(self, job_id: str) -> dict[str, Any]:
        """Delete an ended job and everything it stored (parts, results, manifest) now; 409 while it runs."""
        return dict(self._json("DELETE", f"/v1/jobs/{job_id}"))

    def wait(
        self,
        job_id: str,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll the job until it is terminal and return it; `on_progress` sees every poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.is_terminal:
                return job
            if deadline is not None and time.monotonic() + poll > deadline:
                raise WaitTimeout(f"{job_id} is still {job.status} after {timeout:g}s", job)
            time.sleep(poll)

    def download(
        self, job_id: str, path: str | os.PathLike[str], *, errors: bool = False, merged: bool = False
    ) -> Path:
        """Stream the job's output file (or its error file with `errors=True`) to `path`; `merged=True`:
        the output with its retries' lines in place (`retry`)."""
        return self._stream_to(_results_path(job_id, errors, merged), path)

    def iter_results(
        self, job_id: str, *, errors: bool = False, merged: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The job's output lines (or error lines), decoded one at a time as they stream in; `merged=True`:
        with its retries' lines in place."""
        with self._stream(_results_path(job_id, errors, merged)) as response:
            for line in response.iter_lines():
                if line.strip():
                    yield orjson.loads(line)

    def follow_results(
        self, job_id: str, *, poll: float = 1.0, limit: int = 1000, cursor: str = ""
    ) -> Iterator[dict[str, Any]]:
        """The job's output lines as its parts finish, in input order, until it is over and every
        line was served (`GET /v1/jobs/{id}/results?cursor=`); waits `poll` seconds when caught up."""
        while True:
            response = self._send(
                "GET", f"/v1/jobs/{job_id}/results", retry=True, params={"cursor": cursor, "limit": limit}
            )
            lines = [line for line in response.content.splitlines() if line.strip()]
            for line in lines:
                yield orjson.loads(line)
            next_cursor = response.headers.get("X-Next-Cursor")
            if next_cursor is None:
                return
            cursor = next_cursor
            if len(lines) < limit:
                time.sleep(poll)

    # Models and operations ---------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        data = self._json("GET", "/v1/models")
        return list(data.get("data", [])) if isinstance(data, dict) else list(data)

    def model(self, name: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/models/{name}"))

    def delete_model(self, ref: str) -> dict[str, Any]:
        """Delete one version (`name:version`); 409 while a live job uses it."""
        return dict(self._json("DELETE", f"/v1/models/{ref}"))

    def train(
        self,
        *,
        task: str,
        training_file: str,
        model_name: str,
        base_model: str | object | None = ...,
        validation_file: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a train job; `base_model` omitted = the task's default base, None = from scratch."""
        body: dict[str, Any] = {
            "type": "train",
            "task": task,
            "training_file": training_file,
            "model_name": model_name,
        }
        if base_model is not ...:
            body["base_model"] = base_model
        if validation_file is not None:
            body["validation_file"] = validation_file
        if hyperparameters:
            body["hyperparameters"] = dict(hyperparameters)
        return self.create_job(body, idempotency_key=idempotency_key)

    def evaluate(self, *, task: str, model: str, input_file: str, idempotency_key: str | None = None) -> Job:
        """Submit an evaluate job: the model's metrics on a labelled file."""
        body = {"type": "evaluate", "task": task, "model": model, "input_file": input_file}
        return self.create_job(body, idempotency_key=idempotency_key)

    def webhook_secret(self) -> str:
        """The `whsec_…` secret that signs this tenant's webhooks (check them with `verify_webhook`)."""
        return str(self._json("GET", "/v1/webhook_secret")["secret"])

    def rotate_webhook_secret(self) -> str:
        """Replace the webhook secret; deliveries from now on are signed with the returned one."""
        return str(self._json("POST", "/v1/webhook_secret/rotate", retry=False)["secret"])

    def embed(self, texts: list[str], *, model: str = "minilm-l6") -> list[list[float]]:
        """Synchronous embeddings of a few texts (`POST /v1/embeddings`, OpenAI's shape)."""
        data = self._json("POST", "/v1/embeddings", retry=True, json={"model": model, "input": texts})
        items = sorted(data.get("data", []), key=lambda item: item.get("index", 0))
        return [list(item["embedding"]) for item in items]

    def health(self) -> dict[str, Any]:
        """`GET /healthz`: the server process is alive."""
        data = self._json("GET", "/healthz")
        return dict(data) if isinstance(data, dict) else {"status": "ok"}

    def ready(self) -> dict[str, Any]:
        """`GET /readyz`: database, broker and storage reachable (UnavailableError otherwise)."""
        data = self._json("GET", "/readyz", retry=False)
        return dict(data) if isinstance(data, dict) else {"status": "ok"}
