"""`/v1/webhook_secret`: the secret that signs the tenant's webhooks (made on first use), and rotating it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from inferq.api.auth import require_auth
from inferq.api.context import db, tenant_id
from inferq.shared import webhooks
from inferq.shared.webhook_signature import SIGNATURE_VERSION

bp = require_auth(Blueprint("webhooks", __name__, url_prefix="/v1/webhook_secret"))


def secret_object(secret: str) -> dict[str, Any]:
    return {"object": "webhook_secret", "secret": secret, "signature_version": SIGNATURE_VERSION}


@bp.get("")
def get_secret() -> dict[str, Any]:
    with db() as session:
        return secret_object(webhooks.tenant_secret(session, tenant_id()))


@bp.post("/rotate")
def rotate_secret() -> dict[str, Any]:
    with db() as session:
        return secret_object(webhooks.rotate_secret(session, tenant_id()))
