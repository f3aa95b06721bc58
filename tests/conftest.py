"""Fixtures shared by every test: real Postgres, Redis and S3 (moto server), and API clients on them.

No mocks of those services: tests talk to the real servers. Where they are:

- Postgres: ``INFERQ_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``),
  a superuser connection used only to create and drop throwaway databases.
- Redis: ``INFERQ_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``).
- S3: a ``moto_server`` process started for the session on a free port.

A test that needs an unreachable service is **skipped** with the reason, except when ``CI=true``: then
it **fails**, so a broken CI service never passes silently (see `require_service`).

Fixtures
--------
``require_service``   the function `require_service(name, url)`, for tests with their own services.
``pg_url``            (session) URL of a fresh database ``inferq_test_<random>`` migrated with
                      ``alembic upgrade head``; dropped at the end of the session.
``make_pg_database``  (session) a factory: ``make_pg_database() -> url`` of a new, empty database
                      (not migrated), dropped at the end of the session. For migration tests.
``redis_url``         ``redis://host:port/<n>``: a database number other than 0 claimed by this session
                      (so parallel test sessions do not share it), flushed before and after each test.
``s3_endpoint``       (session) ``http://127.0.0.1:PORT`` of the moto server; sets ``AWS_ACCESS_KEY_ID``,
                      ``AWS_SECRET_ACCESS_KEY`` (``testing``) and ``AWS_DEFAULT_REGION`` for the session.
``s3_settings``       `Settings` on ``pg_url``, ``redis_url`` and a fresh bucket on the moto server
                      (``s3://<bucket>/inferq``), data dir in ``tmp_path``. Every table is emptied and
                      the bucket removed after the test, so tests never see each other's rows.
``embedded_settings`` `Settings` of the embedded mode in ``tmp_path``: SQLite (migrated), ``file://``
                      storage, ``filesystem://`` broker. No servers needed.
``make_client``       a factory: ``make_client(settings) -> ApiClient`` for ``create_app(settings)``.
``api``               ``make_client(s3_settings)``.

For tests that run the worker's own code in this process (`tests/helpers/worker_env.py`):

``make_worker_settings``  a factory: ``make_worker_settings(**extra_env) -> Settings`` points the INFERQ_*
                      environment at ``s3_settings``' servers (plus `extra_env`, e.g.
                      ``INFERQ_PART_RECORDS="20"``) and returns ``get_settings()``, which the worker reads.
``worker_settings``   ``make_worker_settings`` with parts of 30 records and quick leases; a test module
                      overrides it to pass its own values.
``celery_worker``     a Celery worker in this process on ``worker_settings``: control and inference queues.
``training_worker``   the same, taking the training queue's messages too.
``tenant_name``       ``"acme"``: the tenant ``http`` acts for; modules that look it up by name override it.
``http``              ``(client, headers)``: a Flask test client of ``create_app(worker_settings)`` and the
                      auth headers of a new key of ``tenant_name`` (`tests/helpers/tenant_http.py`).
``tiny_base``         the ref of a tiny random-weight BERT classifier registered as ``tenant_name``'s
                      ``tiny-base:1``.

Usage::

    def test_upload(api: ApiClient) -> None:
        headers = api.auth_headers(api.new_key("acme"))
        r = api.upload(headers, b'{"text": "hi"}\\n', filename="in.jsonl")
        assert r.status_code == 201

(``from tests.helpers.api_client import ApiClient`` for the type.) This file holds fixtures only; what
they use is in ``tests/helpers/`` (`services`: where the servers are, skip or fail, cleanup; `api_client`).
The app only ever uses the `Settings` it was given, never ``get_settings()``; code that reads the
environment (the worker's) needs its own monkeypatching: ``make_worker_settings``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
import redis
from celery.contrib.testing.worker import TestWorkController
from sqlalchemy import make_url

from inferq.shared import queue
from inferq.shared.db import get_engine
from inferq.shared.migrate import upgrade
from inferq.shared.settings import Settings, get_settings, reset_settings_cache
from inferq.shared.storage import S3Storage, get_storage
from tests.helpers.api_client import ApiClient
from tests.helpers.embedder import running_embedder
from tests.helpers.ports import free_port
from tests.helpers.services import (
    delete_all_rows,
    drop_database,
    libpq,
    missing,
    moto_binary,
    postgres_admin_url,
    redis_base_url,
    remove_bucket,
    require_service,
    wait_for_moto,
)
from tests.helpers.tenant_http import Http, register_model, tenant_http
from tests.helpers.worker_env import QUICK_LEASES, in_process_worker, worker_env

REDIS_DATABASES = range(1, 16)
REDIS_CLAIM_PREFIX = "inferq-test:db-claim:"
REDIS_CLAIM_SECONDS = 3600


@pytest.fixture(name="require_service")
def require_service_fixture() -> Callable[[str, str], None]:
    return require_service


# ---- Postgres ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def make_pg_database() -> Iterator[Callable[[], str]]:
    """Factory of fresh, empty Postgres databases (``inferq_test_<random>``), all dropped at session end."""
    admin = postgres_admin_url()
    created: list[tuple[str, str]] = []

    def make() -> str:
        require_service("Postgres", admin)
        name = f"inferq_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(libpq(admin), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        created.append((name, url))
        return url

    yield make
    for name, url in created:
        with contextlib.suppress(Exception):
            get_engine(Settings.from_env({"INFERQ_DATABASE_URL": url})).dispose()
        drop_database(admin, name)


@pytest.fixture(scope="session")
def pg_url(make_pg_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh Postgres database at the migrations' head, for the whole session."""
    url = make_pg_database()
    upgrade(
        Settings.from_env({"INFERQ_DATABASE_URL": url, "INFERQ_DATA_DIR": str(tmp_path_factory.mktemp("pg"))})
    )
    return url


# ---- Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _redis_database() -> Iterator[tuple[str, int]]:
    """A Redis database number claimed for this session in db 0 (``SET NX`` with a TTL), released after."""
    base = redis_base_url()
    require_service("Redis", base)
    admin = redis.Redis.from_url(base, db=0)
    token = f"{os.getpid()}:{uuid.uuid4().hex}"
    claimed: int | None = None
    try:
        for n in REDIS_DATABASES:
            if not admin.set(f"{REDIS_CLAIM_PREFIX}{n}", token, nx=True, ex=REDIS_CLAIM_SECONDS):
                continue
            try:
                redis.Redis.from_url(base, db=n).ping()
            except redis.ResponseError:  # this server has fewer databases
                admin.delete(f"{REDIS_CLAIM_PREFIX}{n}")
                break
            claimed = n
            break
        if claimed is None:
            pytest.fail("no free Redis database number (1..15) to claim for this test session")
        yield base, claimed
    finally:
        if claimed is not None and admin.get(f"{REDIS_CLAIM_PREFIX}{claimed}") == token.encode():
            admin.delete(f"{REDIS_CLAIM_PREFIX}{claimed}")
        admin.close()


@pytest.fixture
def redis_url(_redis_database: tuple[str, int]) -> Iterator[str]:
    """``redis://host:port/<n>`` (n ≠ 0, this session's), flushed before and after the test."""
    base, n = _redis_database
    parsed = urlparse(base)
    auth = f"{parsed.username or ''}:{parsed.password}@" if parsed.password else ""
    url = f"{parsed.scheme}://{auth}{parsed.hostname}:{parsed.port}/{n}"
    client = redis.Redis.from_url(url)
    client.expire(f"{REDIS_CLAIM_PREFIX}{n}", REDIS_CLAIM_SECONDS)  # our claim lives while we test
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


# ---- S3 (moto server) ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server for the session: ``http://127.0.0.1:PORT``, with test credentials in the env."""
    binary = moto_binary()
    if binary is None:
        missing("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("wb") as log, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_moto(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- settings ------------------------------------------------------------------------------------


@pytest.fixture
def s3_settings(pg_url: str, redis_url: str, s3_endpoint: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings on the real servers with a fresh bucket; rows and bucket are removed after the test."""
    bucket = f"inferq-test-{uuid.uuid4().hex[:16]}"
    settings = Settings.from_env(
        {
            "INFERQ_DATABASE_URL": pg_url,
            "INFERQ_BROKER_URL": redis_url,
            "INFERQ_STORAGE_URL": f"s3://{bucket}/inferq",
            "INFERQ_S3_ENDPOINT_URL": s3_endpoint,
            "INFERQ_DATA_DIR": str(tmp_path),
        }
    )
    storage = get_storage(settings)
    assert isinstance(storage, S3Storage)
    storage.ensure_bucket()
    try:
        yield settings
    finally:
        delete_all_rows(settings)
        remove_bucket(storage)


@pytest.fixture
def make_worker_settings(
    s3_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Settings]]:
    """A factory: ``make_worker_settings(**extra_env)`` sets the INFERQ_* environment of `s3_settings`'
    servers plus `extra_env` (`worker_env`) and returns ``get_settings()``: the worker's stages and tasks
    read that. It may be called again with other values; the environment is restored after the test."""

    def make(**extra_env: str) -> Settings:
        for name, value in worker_env(s3_settings, **extra_env).items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()
        return get_settings()

    yield make
    reset_settings_cache()


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    """Worker settings with parts of 30 records and quick leases. A test module that needs other values
    overrides this fixture: ``return make_worker_settings(INFERQ_PART_RECORDS="4")``."""
    return make_worker_settings(INFERQ_PART_RECORDS="30", **QUICK_LEASES)


@pytest.fixture
def embedder_settings(worker_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """`worker_settings` whose `embeddings_url` is a real `inferq serve-embeddings` process (its log:
    tmp_path/embedder.log), stopped after the test."""
    with running_embedder(worker_settings, tmp_path / "embedder.log") as url:
        yield worker_settings.with_overrides(embeddings_url=url)


@pytest.fixture
def celery_worker(worker_settings: Settings) -> Iterator[TestWorkController]:
    """A Celery worker in this process on `worker_settings`, taking control and inference messages."""
    with in_process_worker(worker_settings) as worker:
        yield worker


@pytest.fixture
def training_worker(worker_settings: Settings) -> Iterator[TestWorkController]:
    """`celery_worker` that takes the training queue's messages too."""
    with in_process_worker(worker_settings, queue.QUEUE_TRAINING) as worker:
        yield worker


@pytest.fixture
def tenant_name() -> str:
    """The tenant `http` acts for. A test module that looks the tenant up by name overrides this."""
    return "acme"


@pytest.fixture
def http(worker_settings: Settings, tenant_name: str) -> Http:
    """A test client of the app on `worker_settings` and the auth headers of a new key of `tenant_name`."""
    return tenant_http(worker_settings, tenant_name)


@pytest.fixture
def tiny_base(worker_settings: Settings, tenant_name: str, http: Http, tmp_path: Path) -> str:
    """A tiny random-weight BERT classifier registered as `tenant_name`'s `tiny-base:1`: its ref."""
    from tests.helpers.tiny_models import make_tiny_text_classifier  # torch: only for the tests that ask

    folder = make_tiny_text_classifier(tmp_path / "tiny", ["x", "y"])
    return register_model(worker_settings, tenant_name, "tiny-base", folder, "text-classification")


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Iterator[Settings]:
    """The embedded mode in tmp_path: SQLite (migrated), file storage and the filesystem broker."""
    settings = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path / "inferq")})
    upgrade(settings)
    yield settings
    get_engine(settings).dispose()


# ---- API clients ---------------------------------------------------------------------------------


@pytest.fixture
def make_client() -> Callable[[Settings], ApiClient]:
    """``make_client(settings) -> ApiClient`` for ``create_app(settings)``."""
    return ApiClient.of


@pytest.fixture
def api(make_client: Callable[[Settings], ApiClient], s3_settings: Settings) -> ApiClient:
    return make_client(s3_settings)
