"""Request bodies checked against their contract models; a failure is the one 400 of `api.contract.errors`."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from inferq.api.contract.errors import to_invalid_request
from inferq.api.contract.requests import JOB_BODIES, SERVER_FIELDS, JobCreate, JobOptions
from inferq.shared.errors import InvalidRequest

_JOB = TypeAdapter[Any](JobCreate)
T = TypeVar("T", bound=BaseModel)


def _object(body: Any, message: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(message, code="invalid_json")
    return body


def parse_body(model: type[T], body: Any, message: str = "the body must be a JSON object") -> T:
    """`body` as `model`, or the 400 its first problem gets (`invalid_json` when it is no object)."""
    data = _object(body, message)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise to_invalid_request(e, model, SERVER_FIELDS) from e


def parse_job_body(body: Any) -> JobOptions:
    """A `POST /v1/jobs` body: its `type` picks the model (predict, train or evaluate)."""
    data = _object(body, "the body must be a JSON object")
    try:
        job: JobOptions = _JOB.validate_python(data)
    except ValidationError as e:
        model = JOB_BODIES.get(data["type"]) if isinstance(data.get("type"), str) else None
        raise to_invalid_request(e, model, SERVER_FIELDS, strip_tag=True) from e
    return job
