"""OpenAI's embeddings request and response, as inferq reads and writes them (pure: no torch, no I/O).

Shared by the synchronous `POST /v1/embeddings` and by the lines of an OpenAI batch, so both accept the
same bodies and answer the same shapes:

- request ``{"model", "input": str | [str, …], "encoding_format"?: "float" | "base64",
  "dimensions"?: int, "user"?: str}``; token arrays are refused (send text);
- response ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
  "usage": {"prompt_tokens", "total_tokens"}}``; base64 is the little-endian float32 bytes, as OpenAI's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

ENCODING_FORMATS = ("float", "base64")
BODY_FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
MAX_MODEL_CHARS = 200
MAX_DIMENSIONS = 65536


class RequestError(Exception):
    """An embeddings request that cannot be served: a stable code, a sentence, the parameter at fault."""

    def __init__(self, code: str, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.status = status


@dataclass(frozen=True)
class EmbeddingsRequest:
    model: str
    inputs: list[str]
    encoding_format: str = "float"
    dimensions: int | None = None


def _inputs(value: Any, max_inputs: int, too_many_status: int) -> list[str]:
    if value is None:
        raise RequestError("missing_input", "'input' is required: a string or a list of strings", "input")
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise RequestError("invalid_input", "'input' must not be an empty list", "input")
        if any(isinstance(v, (int, list)) and not isinstance(v, bool) for v in value):
            raise RequestError(
                "unsupported_input", "token arrays are not accepted: send 'input' as text", "input"
            )
        if not all(isinstance(v, str) for v in value):
            raise RequestError("invalid_input", "'input' must be a string or a list of strings", "input")
        texts = list(value)
    else:
        raise RequestError("invalid_input", "'input' must be a string or a list of strings", "input")
    if len(texts) > max_inputs:
        raise RequestError(
            "too_many_inputs",
            f"'input' has {len(texts)} texts; at most {max_inputs} are accepted in one request",
            "input",
            too_many_status,
        )
    for i, text in enumerate(texts):
        if not text:
            where = "'input'" if isinstance(value, str) else f"'input[{i}]'"
            raise RequestError("invalid_input", f"{where} is an empty string", "input")
    return texts


def parse_request(body: Any, *, max_inputs: int, too_many_status: int = 400) -> EmbeddingsRequest:
    """Check an embeddings body; every problem is a `RequestError` naming the parameter."""
    if not isinstance(body, dict):
        raise RequestError("invalid_body", "the body must be a JSON object")
    unknown = sorted(k for k in body if k not in BODY_FIELDS)
    if unknown:
        raise RequestError(
            "unknown_parameter",
            f"unknown parameter {unknown[0]!r}; known: {', '.join(BODY_FIELDS)}",
            unknown[0],
        )
    model = body.get("model")
    if model is None:
        raise RequestError("missing_model", "'model' is required", "model")
    if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_CHARS:
        raise RequestError(
            "invalid_model", f"'model' must be a string of 1 to {MAX_MODEL_CHARS} characters", "model"
        )
    texts = _inputs(body.get("input"), max_inputs, too_many_status)
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ENCODING_FORMATS:
        raise RequestError(
            "invalid_encoding_format",
            f"'encoding_format' must be one of {', '.join(ENCODING_FORMATS)}",
            "encoding_format",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise RequestError("invalid_dimensions", "'dimensions' must be a positive integer", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise RequestError("invalid_user", "'user' must be a string", "user")
    return EmbeddingsRequest(model=model, inputs=texts, encoding_format=str(encoding), dimensions=dimensions)


def check_dimensions(request: EmbeddingsRequest, model_dimensions: int | None, model_ref: str) -> None:
    """`dimensions` may only restate the model's own size: these models cannot shorten their vectors."""
    if request.dimensions is None or request.dimensions == model_dimensions:
        return
    if model_dimensions is None:
        message = f"model {model_ref} does not take 'dimensions'; omit it"
    else:
        message = (
            f"model {model_ref} makes {model_dimensions}-dimensional embeddings; "
            f"'dimensions' must be {model_dimensions} or omitted"
        )
    raise RequestError("unsupported_dimensions", message, "dimensions")


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: a list of floats, or base64 of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def response_body(
    model: str, vectors: list[list[float]], tokens: list[int], encoding_format: str
) -> dict[str, Any]:
    """OpenAI's embeddings response for `vectors` (in input order) and the tokens each input took."""
    used = int(sum(tokens))
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(vector, encoding_format)}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
