"""The one error shape, `{"error": {"code", "message", "field"}}`, and the handlers that produce it.

Every failure a request can meet ends here: our own `InferqError`s, werkzeug's HTTP errors, a
database, storage or broker that is down (503), a RecursionError or UnicodeError that only hostile request
data can cause (400), and anything unexpected (500, logged, no traceback).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from inferq.shared.errors import InferqError
from inferq.shared.queue import BrokerError
from inferq.shared.storage import ObjectNotFound, StorageError

log = logging.getLogger(__name__)

# Machine codes for werkzeug's HTTP errors (anything else uses the status name in snake case).
HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    413: "file_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

HTTP_MESSAGES = {
    404: "no such endpoint; see /openapi.json for the API",
    413: "the request body is larger than this server accepts",
}


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    """The one way an error leaves the API."""
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    return response


def handle_inferq_error(e: InferqError) -> Response:
    response = error_response(e.status, e.code, e.message, e.field)
    if e.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(e, "retry_after", None)
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_http_exception(e: HTTPException) -> Response | HTTPException:
    status = e.code or 500
    if status < 400:  # redirects raised by routing (trailing slashes) are not errors
        return e
    code = HTTP_CODES.get(status) or (e.name or "error").lower().replace(" ", "_").replace("-", "_")
    message = HTTP_MESSAGES.get(status) or e.description or e.name or "error"
    response = error_response(status, code, message)
    valid_methods = getattr(e, "valid_methods", None)
    if status == 405 and valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


def handle_database_error(e: SQLAlchemyError) -> Response:
    if isinstance(e, IntegrityError):
        log.warning("integrity error: %s", e)
        return error_response(409, "conflict", "the request conflicts with a concurrent change; retry it")
    if isinstance(e, DataError):
        return error_response(400, "invalid_value", "a value does not fit what the database can store")
    log.error("database unavailable: %s", e)
    return error_response(503, "database_unavailable", "the database is unavailable; retry shortly")


def handle_storage_error(e: StorageError) -> Response:
    if isinstance(e, ObjectNotFound):
        log.error("stored object missing: %s", e)
        return error_response(404, "content_not_found", "the stored bytes of this file are missing")
    log.error("storage unavailable: %s", e)
    return error_response(503, "storage_unavailable", "object storage is unavailable; retry shortly")


def handle_broker_error(e: BrokerError) -> Response:
    log.error("broker unavailable: %s", e)
    return error_response(503, "broker_unavailable", "the message broker is unavailable; retry shortly")


def handle_hostile_input(e: RecursionError | UnicodeError) -> Response:
    """The last resort for data no parser stopped: only a request's own data makes these (a structure
    deeper than the stack, a string that is not valid Unicode), so they are the client's 400, not a 500."""
    log.warning("request refused by a %s: %s", type(e).__name__, str(e)[:200])
    return error_response(
        400,
        "invalid_request",
        "the request has data this server cannot read (too deeply nested or not Unicode)",
    )


def handle_unexpected(e: Exception) -> Response:
    log.exception("unhandled error: %s", type(e).__name__)
    return error_response(500, "internal_error", "internal error; it has been logged")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(InferqError, handle_inferq_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeoutError, handle_database_error)
    app.register_error_handler(StorageError, handle_storage_error)
    app.register_error_handler(BrokerError, handle_broker_error)
    app.register_error_handler(RecursionError, handle_hostile_input)
    app.register_error_handler(UnicodeError, handle_hostile_input)
    app.register_error_handler(Exception, handle_unexpected)
