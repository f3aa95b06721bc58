"""Synchronous embeddings for `POST /v1/embeddings`, forwarded to the embedder process.

The API never loads a model (no torch here): each request goes over HTTP to `inferq serve-embeddings`
(worker/embedder_server.py, where the why and the micro-batching are explained) at
`INFERQ_EMBEDDINGS_URL`. `inferq up` starts one in the embedded default; a distributed deployment runs one
or more next to the workers. No answer within `INFERQ_EMBEDDINGS_TIMEOUT_SECONDS` (connecting included)
is a 503 `embedder_unavailable` with Retry-After; the embedder's own answers in the error shape
(`input_too_long`, or a 500 `internal_error` when the model fails, as before) pass through with its status
and code.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from inferq.api.contract.errors import ErrorCode
from inferq.shared.embedder_protocol import EMBED_PATH, model_to_wire
from inferq.shared.errors import InferqError
from inferq.shared.registry import ResolvedModel
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "the embeddings service is unavailable; retry shortly (or use a job or a batch)"


class EmbedderUnavailable(InferqError):
    status = 503
    code = ErrorCode.EMBEDDER_UNAVAILABLE.value
    retry_after = RETRY_AFTER_SECONDS


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]  # one per text, in order
    tokens: list[int]  # tokens the model read of each text (after truncation to its max_length)


@functools.lru_cache(maxsize=4)
def _http(base_url: str, timeout: float) -> httpx.Client:
    """One pooled client per embedder URL and process (httpx clients are thread-safe)."""
    return httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout), trust_env=False)


def _error_of(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) and isinstance(error.get("code"), str) else None


def embed(settings: Settings, model: ResolvedModel, texts: list[str]) -> Embeddings:
    """The vectors and token counts of `texts`, from the embedder; InferqError for what it refuses."""
    client = _http(settings.embeddings_url, float(settings.embeddings_timeout_seconds))
    payload = orjson.dumps({"model": model_to_wire(model), "inputs": texts})
    try:
        response = client.post(EMBED_PATH, content=payload, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as e:
        log.warning("embedder at %s did not answer: %s", settings.embeddings_url, type(e).__name__)
        raise EmbedderUnavailable(UNAVAILABLE) from e
    if response.status_code == 200:
        body = orjson.loads(response.content)
        return Embeddings(vectors=body["vectors"], tokens=body["tokens"])
    error = _error_of(response)
    if error is None:  # not the embedder (a proxy's 502, another server on that port)
        log.warning("%s answered %d without an error body", settings.embeddings_url, response.status_code)
        raise EmbedderUnavailable(UNAVAILABLE)
    raise InferqError(
        str(error.get("message") or error["code"]),
        field=error.get("field"),
        code=error["code"],
        status=response.status_code,
    )
