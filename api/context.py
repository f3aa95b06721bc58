"""What a request handler reaches through the app: its settings, storage and database sessions.

The app never reads the environment: everything comes from the `Settings` given to `create_app`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from inferq.shared.db import open_read_session, session_scope
from inferq.shared.settings import Settings
from inferq.shared.storage import Storage, get_storage

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


READ_SESSION = "inferq_read_session"


@contextmanager
def read_db() -> Iterator[Session]:
    """Reads only (autocommit, no transaction), for polls and lookups that must be cheap: one
    connection per request, shared by authentication and the route, closed when the request ends."""
    session = g.get(READ_SESSION)
    if session is None:
        session = open_read_session(current_settings())
        setattr(g, READ_SESSION, session)
    yield session


def close_read_db(_error: BaseException | None = None) -> None:
    """`teardown_request`: return the request's read connection to the pool."""
    session = g.pop(READ_SESSION, None)
    if session is not None:
        session.close()


def tenant_id() -> str:
    """The tenant of the authenticated request (set by `api.auth.authenticate`)."""
    value = g.get("tenant_id")
    assert isinstance(value, str), "tenant_id() used on a route without authentication"
    return value


def plausible_id(value: str, prefix: str) -> bool:
    """Whether `value` could be an id this server made (`file_…`); anything else is simply not found."""
    return value.startswith(f"{prefix}_") and ID_RE.match(value) is not None
