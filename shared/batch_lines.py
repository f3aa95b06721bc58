"""OpenAI batch files: reading their request lines and writing their output and error lines (pure).

A batch is a job of type ``batch``; its id is the job's with the prefix ``batch_`` instead of ``job_``.
Each input line is one request, ``{"custom_id", "method": "POST", "url": "/v1/embeddings", "body": {…}}``
(the body as `shared.openai_embeddings` reads it), and one record of the job: it becomes one output line

    {"id": "batch_req_…", "custom_id", "response": {"status_code": 200, "request_id", "body": {…}},
     "error": null}

or one error line ``{"id", "custom_id", "line", "response": null | {"status_code": 4xx, "request_id",
"body": {"error": {…}}}, "error": {"code", "message"}}``. A line that does not parse as a request (no
``custom_id`` to answer to) has ``response: null``.

Per-line error codes, besides those of `shared.records` (invalid_json, invalid_encoding, not_an_object)
and of `shared.openai_embeddings` (missing_input, invalid_input, unsupported_input, …):

==================  ==========================================================================
invalid_custom_id   ``custom_id`` is missing or not a string of 1 to 512 characters
invalid_method      ``method`` is not ``POST``
invalid_url         ``url`` is not the batch's endpoint
invalid_body        ``body`` is missing or not an object
model_not_found     the body names a model that does not exist
model_mismatch      the body names another model than the batch runs (a batch runs one model)
==================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from inferq.shared.job_types import JobType
from inferq.shared.openai_embeddings import (
    EmbeddingsRequest,
    RequestError,
    check_dimensions,
    parse_request,
    response_body,
)
from inferq.shared.records import BOM, MAX_ID_CHARS, Record, RecordError, dumps_line

JOB_TYPE = JobType.BATCH
ENDPOINTS = ("/v1/embeddings",)
COMPLETION_WINDOWS = {"24h": 24 * 3600}
MAX_INPUTS_PER_LINE = 2048
MAX_MESSAGE_CHARS = 300
# HTTP status of the error response written for a request refused with this code (default 400).
STATUS_BY_CODE = {"model_not_found": 404, "processing_error": 500, "worker_lost": 500}

# Says why a line's model cannot be used by this batch as (code, message), or None when it can.
ModelCheck = Callable[[str], tuple[str, str] | None]


def batch_id(job_id: str) -> str:
    return "batch_" + job_id.removeprefix("job_")


def job_id_of(batch_id_: str) -> str:
    return "job_" + batch_id_.removeprefix("batch_")


def _suffix(job_id: str) -> str:
    return job_id.removeprefix("job_")


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


class LineError(Exception):
    def __init__(self, code: str, message: str, custom_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = _clip(message)
        self.custom_id = custom_id


def _custom_id(obj: dict[str, Any]) -> str:
    value = obj.get("custom_id")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise LineError(
            "invalid_custom_id", f"'custom_id' must be a string of 1 to {MAX_ID_CHARS} characters"
        )
    return value


def read_request(raw: bytes, endpoint: str) -> tuple[str, EmbeddingsRequest]:
    """One batch line → (custom_id, the request), or a `LineError` saying what is wrong with it."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LineError("invalid_encoding", "the line is not valid UTF-8 text") from e
        raise LineError("invalid_json", f"the line is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise LineError("not_an_object", "a request line must be a JSON object")
    custom_id = _custom_id(obj)
    if obj.get("method") != "POST":
        raise LineError("invalid_method", "'method' must be \"POST\"", custom_id)
    url = obj.get("url")
    if url != endpoint:
        raise LineError(
            "invalid_url", f"'url' must be {endpoint!r}, the batch's endpoint; got {url!r}", custom_id
        )
    body = obj.get("body")
    if not isinstance(body, dict):
        raise LineError("invalid_body", "'body' must be a JSON object: the request's body", custom_id)
    try:
        request = parse_request(body, max_inputs=MAX_INPUTS_PER_LINE)
    except RequestError as e:
        raise LineError(e.code, e.message, custom_id) from e
    return custom_id, request


def parse_batch_part(
    data: bytes,
    *,
    first_line: int,
    first_record: int,
    endpoint: str,
    check_model: ModelCheck,
    model_dimensions: int | None,
    model_ref: str,
) -> tuple[list[Record], list[RecordError]]:
    """The request lines of one part: a Record per usable request (`id` its custom_id, `value` its
    `EmbeddingsRequest`) and a RecordError per other non-blank line, counted as `shared.records` does."""
    if first_line == 1:
        data = data.removeprefix(BOM)
    records: list[Record] = []
    errors: list[RecordError] = []
    index = first_record
    for line, raw in enumerate(data.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            custom_id, request = read_request(raw, endpoint)
            problem = check_model(request.model)
            if problem is not None:
                raise LineError(problem[0], problem[1], custom_id)
            try:
                check_dimensions(request, model_dimensions, model_ref)
            except RequestError as e:
                raise LineError(e.code, e.message, custom_id) from e
            records.append(Record(index, line, custom_id, request))
        except LineError as e:
            errors.append(RecordError(index, line, e.custom_id, e.code, e.message))
        index += 1
    return records, errors


@dataclass(frozen=True)
class Probe:
    """What the head of a batch file asks for, read at submit."""

    models: list[tuple[str, int]] = field(default_factory=list)  # (model, first line asking it), in order
    requests: int = 0  # usable request lines seen
    lines: int = 0  # non-blank lines seen
    first_error: str | None = None


def probe(head: bytes, *, complete: bool, endpoint: str, max_models: int = 16) -> Probe:
    """Read the whole lines of `head` (all of it when `complete`, the file's end): the models asked for."""
    data = head.removeprefix(BOM)
    if not complete:
        data = data[: data.rfind(b"\n") + 1]
    models: dict[str, int] = {}
    requests = lines = 0
    first_error: str | None = None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        lines += 1
        try:
            _, request = read_request(raw, endpoint)
        except LineError as e:
            first_error = first_error or f"line {number}: {e.message}"
            continue
        requests += 1
        if request.model not in models and len(models) < max_models:
            models[request.model] = number
    return Probe(models=list(models.items()), requests=requests, lines=lines, first_error=first_error)


def output_line(job_id: str, record: Record, vectors: list[list[float]], tokens: list[int]) -> bytes:
    """The output line of a request that succeeded."""
    request: EmbeddingsRequest = record.value
    suffix = _suffix(job_id)
    return dumps_line(
        {
            "id": f"batch_req_{suffix}_{record.index}",
            "custom_id": record.id,
            "response": {
                "status_code": 200,
                "request_id": f"req_{suffix}_{record.index}",
                "body": response_body(request.model, vectors, tokens, request.encoding_format),
            },
            "error": None,
        }
    )


def error_line(job_id: str, err: RecordError) -> bytes:
    """The error line of a request that failed, or of a line that is no request at all."""
    suffix = _suffix(job_id)
    response = None
    if err.id is not None:
        status = STATUS_BY_CODE.get(err.code, 400)
        response = {
            "status_code": status,
            "request_id": f"req_{suffix}_{err.index}",
            "body": {
                "error": {
                    "message": err.message,
                    "type": "server_error" if status >= 500 else "invalid_request_error",
                    "param": None,
                    "code": err.code,
                }
            },
        }
    return dumps_line(
        {
            "id": f"batch_req_{suffix}_{err.index}",
            "custom_id": err.id,
            "line": err.line,
            "response": response,
            "error": {"code": err.code, "message": err.message},
        }
    )
