"""The servers the tests use (Postgres, Redis, moto S3): where they are, whether they answer, and cleaning
up after a test. The fixtures on them are in `tests/conftest.py`.

A test that needs an unreachable service is skipped with the reason, except when ``CI=true``: then it
fails, so a broken CI service never passes silently (`missing`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from inferq.shared.db import get_engine
from inferq.shared.models import Base
from inferq.shared.settings import Settings
from inferq.shared.storage import S3Storage, StorageError

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
MOTO_START_SECONDS = 30


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip the test for a missing service or tool; fail it when ``CI=true``."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so a missing service is a failure", pytrace=False)
    pytest.skip(f"{reason}; start or install it to run this test (with CI=true this would fail)")


def require_service(name: str, url: str, timeout: float = 2.0) -> None:
    """Skip the test (fail it when ``CI=true``) unless `url`'s host and port accept a TCP connection."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port
    if port is None:
        raise ValueError(f"{name} URL {url!r} has no port")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as e:
        missing(f"{name} is not reachable at {host}:{port} ({e})")


# ---- Postgres ------------------------------------------------------------------------------------


def postgres_admin_url() -> str:
    """The superuser connection that creates and drops throwaway databases."""
    return os.environ.get("INFERQ_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def redis_base_url() -> str:
    return os.environ.get("INFERQ_TEST_REDIS_URL") or DEFAULT_REDIS_URL


def libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_all_rows(settings: Settings) -> None:
    """Empty every table, children first (the schema stays, `alembic_version` too)."""
    with get_engine(settings).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


# ---- S3 (moto server) ----------------------------------------------------------------------------


def moto_binary() -> str | None:
    """`moto_server` next to this Python (the venv's), else on PATH; None where there is none."""
    local = Path(sys.executable).parent / "moto_server"
    return str(local) if local.exists() else shutil.which("moto_server")


def wait_for_moto(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until the moto server at `url` answers; the test fails if it exits or takes too long."""
    deadline = time.monotonic() + MOTO_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited with {proc.returncode}: {log_path.read_text(errors='replace')}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"moto_server did not answer on {url} within {MOTO_START_SECONDS}s")


def remove_bucket(storage: S3Storage) -> None:
    """Every object of the bucket, then the bucket; what fails is left (moto forgets it at exit)."""
    with contextlib.suppress(StorageError, Exception):
        for key in list(storage.list("")):
            storage.delete(key)
        storage.client.delete_bucket(Bucket=storage.bucket)
