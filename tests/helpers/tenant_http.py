"""Tenants for the integration tests that speak HTTP to ``create_app(settings)`` through a Flask test
client: a new key, its auth headers, the tenant's id by name, and a model folder registered as theirs."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from inferq.api.app import create_app
from inferq.shared.db import session_scope
from inferq.shared.models import Tenant
from inferq.shared.registry import register_folder
from inferq.shared.settings import Settings
from inferq.shared.storage import get_storage
from inferq.shared.tenants import create_tenant_key

# A test client of the app and the auth headers of one tenant.
Http = tuple[FlaskClient, dict[str, str]]


def new_tenant_key(settings: Settings, tenant: str) -> str:
    """A new API key of `tenant` (created if missing)."""
    with session_scope(settings) as session:
        return create_tenant_key(session, tenant)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tenant_headers(settings: Settings, tenant: str) -> dict[str, str]:
    """Auth headers with a new key of `tenant`."""
    return bearer(new_tenant_key(settings, tenant))


def tenant_http(settings: Settings, tenant: str) -> Http:
    """A test client of ``create_app(settings)`` and the auth headers of a new key of `tenant`."""
    return create_app(settings).test_client(), tenant_headers(settings, tenant)


def tenant_id(settings: Settings, tenant: str) -> str:
    with session_scope(settings) as session:
        return str(session.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar_one())


def register_model(settings: Settings, tenant: str, name: str, folder: Path, task: str) -> str:
    """Register a local model folder as a new version of `tenant`'s model `name`; its ref."""
    with session_scope(settings) as session:
        return register_folder(
            session, get_storage(settings), tenant_id(settings, tenant), name, folder, task
        ).ref
