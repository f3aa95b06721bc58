"""The HTTP helpers several routes share (routes import helpers from modules like this one, never from
each other): a stored file's bytes as a streamed response, and the content types of the formats."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from inferq.api.context import current_storage
from inferq.shared.errors import InvalidRequest
from inferq.shared.models import File

CONTENT_TYPES = {
    "jsonl": "application/jsonl; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


class StoredBytes:
    """A response body streamed from storage; the first chunk is read before the headers are sent
    so that a storage failure still becomes a proper error response."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._first = next(chunks, b"")

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        yield from self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def content_response(f: File) -> BaseResponse:
    """The file's bytes with its content type; `?redirect=true` on S3 answers 302 to a presigned URL."""
    storage = current_storage()
    raw = request.args.get("redirect", "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidRequest("redirect must be true or false", field="redirect", code="invalid_value")
    if raw in ("true", "1"):
        url = storage.presigned_url(f.storage_key, expires=300)
        if url is not None:
            return redirect(url, code=302)
    body = StoredBytes(storage.iter_bytes(f.storage_key))
    response = Response(
        body, status=200, content_type=CONTENT_TYPES.get(f.format, "application/octet-stream")
    )
    response.content_length = f.bytes
    response.headers["X-Content-SHA256"] = f.sha256
    return response
