"""Engine and sessions. One engine per database URL per process, built from the settings."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from inferq.shared.settings import Settings, get_settings

_lock = threading.Lock()
_factories: dict[str, sessionmaker[Session]] = {}
SETTINGS_INFO = "inferq_settings"


def make_engine(database_url: str) -> Engine:
    # hide_parameters: a database error (logged, or in a traceback) never shows the values of its
    # statement, which can be tenants' data (file names, cached results); the SQL itself is kept.
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_pre_ping=True,
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(
        database_url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
    )


def _factory(settings: Settings | None) -> sessionmaker[Session]:
    url = (settings or get_settings()).database_url
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            factory = sessionmaker(bind=make_engine(url), expire_on_commit=False)
            _factories[url] = factory
        return factory


def get_engine(settings: Settings | None = None) -> Engine:
    engine = _factory(settings).kw["bind"]
    assert isinstance(engine, Engine)
    return engine


def dispose_engines(*, close: bool = True) -> None:
    """Drop pooled connections (after fork, and in tests between databases).

    `close=False` in a forked child: forget the parent's connections without closing them, which would
    end the parent's sessions under it (SQLAlchemy's advice for pools shared across fork)."""
    with _lock:
        for factory in _factories.values():
            factory.kw["bind"].dispose(close=close)
        _factories.clear()


def _reset_lock_in_child() -> None:
    """A fork while another thread held the lock (a worker's reconciler thread) must not leave it held."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """One transaction: commits on success, rolls back on any error.

    `session.info[SETTINGS_INFO]` holds the settings, for hooks that send messages after the commit.
    """
    session = _factory(settings)()
    session.info[SETTINGS_INFO] = settings or get_settings()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def open_read_session(settings: Settings | None = None) -> Session:
    """A session for reads only, in autocommit: no BEGIN and COMMIT round trips (a poll of a job is
    one SELECT), and each statement sees what is committed. Anything written would commit at once:
    do not write through it. The caller closes it."""
    session = _factory(settings)()
    session.info[SETTINGS_INFO] = settings or get_settings()
    try:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    except BaseException:
        session.close()
        raise
    return session


@contextmanager
def read_scope(settings: Settings | None = None) -> Iterator[Session]:
    """`open_read_session` for the length of a `with` block."""
    session = open_read_session(settings)
    try:
        yield session
    finally:
        session.close()
