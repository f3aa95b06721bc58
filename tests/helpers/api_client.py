"""`ApiClient`: a Flask test client of ``create_app(settings)`` and helpers to act as a tenant.

The fixtures `make_client` and `api` (`tests/conftest.py`) hand one out; tests import the class from
here for its type.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from inferq.api.app import create_app
from inferq.shared.db import session_scope
from inferq.shared.settings import Settings
from inferq.shared.tenants import create_tenant_key


@dataclass
class ApiClient:
    """A Flask test client of ``create_app(settings)`` and helpers to act as a tenant."""

    app: Flask
    client: FlaskClient
    settings: Settings

    @classmethod
    def of(cls, settings: Settings) -> ApiClient:
        """A test client of a new app on `settings` (``TESTING`` on)."""
        app = create_app(settings)
        app.config["TESTING"] = True
        return cls(app=app, client=app.test_client(), settings=settings)

    def new_key(self, tenant: str = "acme") -> str:
        """A new API key of `tenant` (created if missing)."""
        with session_scope(self.settings) as session:
            return create_tenant_key(session, tenant)

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def headers_for(self, tenant: str = "acme") -> dict[str, str]:
        """Auth headers with a new key of `tenant`."""
        return self.auth_headers(self.new_key(tenant))

    def upload(
        self,
        headers: dict[str, str],
        data: bytes,
        filename: str = "input.jsonl",
        purpose: str | None = "input",
    ) -> TestResponse:
        """``POST /v1/files`` (multipart) with `data` as the file."""
        form: dict[str, Any] = {"file": (io.BytesIO(data), filename)}
        if purpose is not None:
            form["purpose"] = purpose
        return self.client.post("/v1/files", headers=headers, data=form, content_type="multipart/form-data")

    def submit(self, headers: dict[str, str], **body: Any) -> TestResponse:
        """``POST /v1/jobs`` with `body` as JSON."""
        return self.client.post("/v1/jobs", headers=headers, json=body)
