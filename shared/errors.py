"""Errors both sides raise: each has a stable machine code, an HTTP status and a sentence for a human."""

from __future__ import annotations


class InferqError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequest(InferqError):
    status = 400
    code = "invalid_request"


class NotFound(InferqError):
    status = 404
    code = "not_found"


class Conflict(InferqError):
    status = 409
    code = "conflict"


class TooLarge(InferqError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(InferqError):
    status = 415
    code = "unsupported_file_type"


class Unprocessable(InferqError):
    status = 422
    code = "unprocessable"
