"""The error codes of a request body that fails its contract model, and the ONE mapping from pydantic's
validation errors to them (`InvalidRequest`, 400, with the field at fault).

Every body has one answer however many things are wrong with it, chosen in a fixed order: a field the
server sets (`forbidden_field`), then an unknown field (`unknown_field`, alphabetically), then a missing
required one (`field_required`; `null` counts as missing), then the first other failure in the order the
model declares its fields. Validators of the contract raise `contract_error(code, message)` for the
codes pydantic has no type for (`unsupported_param`, …): their type *is* the code.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from inferq.shared.errors import InvalidRequest

log = logging.getLogger(__name__)


class ErrorCode(str, Enum):
    """The codes a body's own content can be refused with (400), before anything needs the database, and
    the contract's other declared codes (below the 400s)."""

    INVALID_JSON = "invalid_json"  # not a JSON object at all
    UNKNOWN_FIELD = "unknown_field"
    FORBIDDEN_FIELD = "forbidden_field"  # set by the server, never by a client
    FIELD_REQUIRED = "field_required"
    INVALID_TYPE = "invalid_type"
    INVALID_VALUE = "invalid_value"  # out of range, not one of the choices, badly formed
    UNSUPPORTED_PARAM = "unsupported_param"
    UNSUPPORTED_OUTPUT_FORMAT = "unsupported_output_format"
    UNSUPPORTED_ENDPOINT = "unsupported_endpoint"
    # Not a body's fault: 503 (with Retry-After) when the embedder process of POST /v1/embeddings does not
    # answer in time; api.embedder raises it, /openapi.json documents it.
    EMBEDDER_UNAVAILABLE = "embedder_unavailable"


# pydantic error types → our code; any other type ending in `_type` is `invalid_type`, the rest
# `invalid_value` (ranges, lengths, patterns, choices, a ValueError of a validator).
PYDANTIC_CODES: dict[str, ErrorCode] = {
    "missing": ErrorCode.FIELD_REQUIRED,
    "extra_forbidden": ErrorCode.UNKNOWN_FIELD,
    "union_tag_not_found": ErrorCode.FIELD_REQUIRED,
    "union_tag_invalid": ErrorCode.INVALID_VALUE,
    "literal_error": ErrorCode.INVALID_VALUE,
    "enum": ErrorCode.INVALID_VALUE,
    "int_from_float": ErrorCode.INVALID_TYPE,
    "model_attributes_type": ErrorCode.INVALID_JSON,
}
# Fields that are maps of the client's own keys: their errors name the field, not the key.
MAP_FIELDS = frozenset({"metadata"})
_CODES = {c.value for c in ErrorCode}
_FIRST = {ErrorCode.FORBIDDEN_FIELD: 0, ErrorCode.UNKNOWN_FIELD: 1, ErrorCode.FIELD_REQUIRED: 2}


def contract_error(code: ErrorCode, message: str) -> PydanticCustomError:
    """What a contract validator raises for a code of its own; `code_of` reads the code back."""
    return PydanticCustomError(code.value, message)


def code_of(error: ErrorDetails, server_fields: frozenset[str] = frozenset()) -> ErrorCode:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden" and len(loc) == 1 and loc[0] in server_fields:
        return ErrorCode.FORBIDDEN_FIELD
    if len(loc) == 1 and error.get("input", ...) is None and kind not in ("extra_forbidden", "missing"):
        return ErrorCode.FIELD_REQUIRED  # `null` for a required field (optional ones all accept null)
    if kind in _CODES:
        return ErrorCode(kind)
    if kind == "union_tag_invalid" and error["ctx"].get("tag") in (None, "None"):
        return ErrorCode.FIELD_REQUIRED
    if kind in PYDANTIC_CODES:
        return PYDANTIC_CODES[kind]
    return ErrorCode.INVALID_TYPE if kind.endswith("_type") else ErrorCode.INVALID_VALUE


def field_of(loc: tuple[int | str, ...]) -> str | None:
    parts = [str(p) for p in loc]
    for i, part in enumerate(parts):
        if part in MAP_FIELDS:
            return ".".join(parts[: i + 1])
    return ".".join(parts) or None


def _message(code: ErrorCode, field: str | None, error: ErrorDetails, known: list[str]) -> str:
    if code is ErrorCode.FORBIDDEN_FIELD:
        return f"{field} is set by the server and cannot be given"
    if code is ErrorCode.UNKNOWN_FIELD:
        return f"unknown field {field!r}; known: {', '.join(known)}"
    if code is ErrorCode.FIELD_REQUIRED:
        return f"{field} is required"
    if code is ErrorCode.INVALID_JSON:
        return "the body must be a JSON object"
    return f"{field}: {error['msg']}" if field else error["msg"]


def _field_order(model: type[BaseModel] | None) -> dict[str, int]:
    """A body's own fields first (in the order it declares them), then those it inherits (the options
    every job takes): a bad `task` is answered before a bad `priority`."""
    if model is None:
        return {}
    own = list(model.__annotations__)
    names = own + [name for name in model.model_fields if name not in own]
    return {name: i for i, name in enumerate(names)}


def _known_fields(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str]:
    """The fields the model at `loc`'s parent declares (for the message of an unknown field)."""
    for part in loc[:-1]:
        if model is None:
            return []
        info = model.model_fields.get(str(part))
        annotation = info.annotation if info is not None else None
        model = _model_in(annotation)
    return sorted(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def to_invalid_request(
    e: ValidationError,
    model: type[BaseModel] | None = None,
    server_fields: frozenset[str] = frozenset(),
    strip_tag: bool = False,
) -> InvalidRequest:
    """The one answer for a body that failed `model`: the first error in the module's order.
    `strip_tag`: the errors come from a union discriminated on its first location (the tag)."""
    errors = e.errors(include_url=False)
    if strip_tag:
        errors = [{**err, "loc": err["loc"][1:]} if len(err["loc"]) > 1 else err for err in errors]
    order = _field_order(model)
    ranked = sorted(
        enumerate(errors),
        key=lambda pair: (
            _FIRST.get(code_of(pair[1], server_fields), 3),
            field_of(pair[1]["loc"]) if _FIRST.get(code_of(pair[1], server_fields), 3) < 2 else "",
            order.get(str(pair[1]["loc"][0]), len(order)) if pair[1]["loc"] else -1,
            pair[0],
        ),
    )
    error = ranked[0][1]
    code = code_of(error, server_fields)
    field = None if code is ErrorCode.INVALID_JSON else field_of(error["loc"])
    if error["type"].startswith("union_tag"):  # the discriminator itself is missing or unknown
        ctx = error.get("ctx") or {}
        field = str(ctx.get("discriminator", "type")).strip("'")
        error = {**error, "msg": f"must be one of {ctx.get('expected_tags', '')}"}
    message = _message(code, field, error, _known_fields(model, error["loc"]))
    log.debug("body refused: %s %s (%d errors)", code.value, field, len(errors))
    return InvalidRequest(message, field=field, code=code.value)
