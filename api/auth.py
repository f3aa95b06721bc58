"""Bearer API keys: `Authorization: Bearer <key>` names a tenant; missing, unknown or revoked → 401."""

from __future__ import annotations

from flask import Blueprint, g, request

from api.context import read_db
from api.limits import check_rate_limit
from shared.errors import InferqError
from shared.tenants import tenant_for_key


class Unauthorized(InferqError):
    status = 401
    code = "unauthorized"


def authenticate() -> None:
    """`before_request` hook: set `g.tenant_id` or refuse the request."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized(
            "missing API key: send the header 'Authorization: Bearer <api key>'", code="missing_api_key"
        )
    with read_db() as session:
        tenant = tenant_for_key(session, key)
    if tenant is None:
        raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
    g.tenant_id = tenant


def require_auth(blueprint: Blueprint) -> Blueprint:
    """Every route of `blueprint` needs a valid key, and counts against its tenant's rate limit."""
    blueprint.before_request(authenticate)
    blueprint.before_request(check_rate_limit)
    return blueprint
