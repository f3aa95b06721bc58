"""OpenAI's embeddings request and response, as inferq reads and writes them (pure: no torch, no I/O).

Shared by the synchronous `POST /v1/embeddings` and by the lines of an OpenAI batch, so both accept the
same bodies and answer the same shapes:

- request ``{"model", "input": str | [str, …], "encoding_format"?: "float" | "base64",
  "dimensions"?: int, "user"?: str}``, declared once as `EmbeddingsBody` (parse_request validates with it;
  `/openapi.json` shows it as `EmbeddingsCreate`, api.contract.requests); token arrays are refused;
- response ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
  "usage": {"prompt_tokens", "total_tokens"}}``; base64 is the little-endian float32 bytes, as OpenAI's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import ErrorDetails, PydanticCustomError

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


# The code and sentence of a parameter that fails its type or limits (`input` raises its own: `_inputs`).
PARAM_ERRORS: dict[str, tuple[str, str]] = {
    "model": ("invalid_model", f"'model' must be a string of 1 to {MAX_MODEL_CHARS} characters"),
    "encoding_format": (
        "invalid_encoding_format",
        f"'encoding_format' must be one of {', '.join(ENCODING_FORMATS)}",
    ),
    "dimensions": ("invalid_dimensions", "'dimensions' must be a positive integer"),
    "user": ("invalid_user", "'user' must be a string"),
}
MISSING = {
    "model": ("missing_model", "'model' is required"),
    "input": ("missing_input", "'input' is required: a string or a list of strings"),
}
MAX_INPUTS_CONTEXT = "max_inputs"  # validation context: texts one request may send (the caller's limit)


def _problem(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


def _inputs(value: Any, info: ValidationInfo) -> list[str]:
    """`input` as a list of texts, or the problem with it (its code is the error's type)."""
    if value is None:
        raise _problem(*MISSING["input"])
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise _problem("invalid_input", "'input' must not be an empty list")
        if any(isinstance(v, (int, list)) and not isinstance(v, bool) for v in value):
            raise _problem("unsupported_input", "token arrays are not accepted: send 'input' as text")
        if not all(isinstance(v, str) for v in value):
            raise _problem("invalid_input", "'input' must be a string or a list of strings")
        texts = list(value)
    else:
        raise _problem("invalid_input", "'input' must be a string or a list of strings")
    max_inputs = (info.context or {}).get(MAX_INPUTS_CONTEXT)
    if max_inputs is not None and len(texts) > max_inputs:
        message = f"'input' has {len(texts)} texts; at most {max_inputs} are accepted in one request"
        raise _problem("too_many_inputs", message)
    for i, text in enumerate(texts):
        if not text:
            where = "'input'" if isinstance(value, str) else f"'input[{i}]'"
            raise _problem("invalid_input", f"{where} is an empty string")
    return texts


Text = Annotated[str, StringConstraints(min_length=1)]
Inputs = Annotated[
    Text | Annotated[list[Text], Field(min_length=1)],
    BeforeValidator(_inputs),
    Field(description="text, or a list of texts (token arrays are refused)"),
]
if TYPE_CHECKING:
    EncodingFormat = str
else:
    EncodingFormat = Literal[ENCODING_FORMATS]


class EmbeddingsBody(BaseModel):
    """OpenAI's embeddings request, as `POST /v1/embeddings` and the lines of a batch take it (strict: no
    unknown parameters, a boolean is no integer; `null` for an optional parameter means absent). How many
    texts one request may send is its caller's (`parse_request`'s `max_inputs`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(
        min_length=1, max_length=MAX_MODEL_CHARS, description="an embedding model: name or name:version"
    )
    input: Inputs
    encoding_format: EncodingFormat | None = Field(
        None, description="float (the default), or base64: the little-endian float32 bytes"
    )
    dimensions: int | None = Field(
        None, ge=1, le=MAX_DIMENSIONS, description="only the model's own size is accepted"
    )
    user: str | None = Field(None, description="accepted and ignored")


def _rank(error: ErrorDetails) -> tuple[int, str, int]:
    """Unknown parameters first (alphabetically), then the parameters in the order the body declares."""
    name = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        return (0, name, 0)
    return (1, "", BODY_FIELDS.index(name) if name in BODY_FIELDS else len(BODY_FIELDS))


def _request_error(e: ValidationError, body: dict[str, Any], too_many_status: int) -> RequestError:
    """The one answer for a body that failed `EmbeddingsBody`: its first problem in `_rank`'s order."""
    error = min(e.errors(include_url=False), key=_rank)
    name = str(error["loc"][0]) if error["loc"] else None
    kind = error["type"]
    if name is None:
        return RequestError("invalid_body", "the body must be a JSON object")
    if kind == "extra_forbidden":
        return RequestError(
            "unknown_parameter", f"unknown parameter {name!r}; known: {', '.join(BODY_FIELDS)}", name
        )
    if name in MISSING and (kind == "missing" or body.get(name) is None):
        return RequestError(*MISSING[name], name)
    if name == "input":  # `_inputs` raised it: the type is the code, the message is its own
        status = too_many_status if kind == "too_many_inputs" else 400
        return RequestError(kind, error["msg"], name, status)
    code, message = PARAM_ERRORS.get(name, ("invalid_body", error["msg"]))
    return RequestError(code, message, name)


def parse_request(body: Any, *, max_inputs: int, too_many_status: int = 400) -> EmbeddingsRequest:
    """Check an embeddings body against `EmbeddingsBody`; every problem is a `RequestError` naming the
    parameter (a `too_many_inputs` one with `too_many_status`)."""
    if not isinstance(body, dict):
        raise RequestError("invalid_body", "the body must be a JSON object")
    try:
        parsed = EmbeddingsBody.model_validate(body, context={MAX_INPUTS_CONTEXT: max_inputs})
    except ValidationError as e:
        raise _request_error(e, body, too_many_status) from e
    texts = [parsed.input] if isinstance(parsed.input, str) else list(parsed.input)
    return EmbeddingsRequest(
        model=parsed.model,
        inputs=texts,
        encoding_format=parsed.encoding_format or "float",
        dimensions=parsed.dimensions,
    )


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
