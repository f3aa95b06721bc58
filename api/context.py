"""What a request handler reaches through the app: its settings, storage and database sessions.

The app never reads the environment: everything comes from the `Settings` given to `create_app`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.settings import Settings
from shared.storage import Storage, get_storage

SETTINGS_KEY = "INFERQ_SETTINGS"
ID_RE = re.compile(r"^[a-z]{1,20}_[0-9a-z]{1,64}$")


def settings_of(app: Flask) -> Settings:
    settings = app.config[SETTINGS_KEY]
    assert isinstance(settings, Settings)
    return settings


def current_settings() -> Settings:
    return settings_of(current_app)


def current_storage() -> Storage:
    return get_storage(current_settings())


@contextmanager
def db() -> Iterator[Session]:
    """One transaction on the app's database: commits on success, rolls back on error."""
    with session_scope(current_settings()) as session:
        yield session


def tenant_id() -> str:
    """The tenant of the authenticated request (set by `api.auth.authenticate`)."""
    value = g.get("tenant_id")
    assert isinstance(value, str), "tenant_id() used on a route without authentication"
    return value


def plausible_id(value: str, prefix: str) -> bool:
    """Whether `value` could be an id this server made (`file_…`); anything else is simply not found."""
    return value.startswith(f"{prefix}_") and ID_RE.match(value) is not None
