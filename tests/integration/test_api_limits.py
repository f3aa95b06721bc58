"""Keys and quotas (hashed keys, `inferq keys revoke`, per-tenant rate limit and live-job quota → 429 with
`Retry-After`) and request limits (too many records → 422, server-set fields in a body → 400), against
Postgres, Redis and the moto S3 server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import event, func, select, text
from werkzeug.test import TestResponse

from inferq.api.limits import EXTENSION, RATE_KEY_PREFIX, WINDOW_SECONDS, RateLimiter
from inferq.shared.db import get_engine, session_scope
from inferq.shared.models import ApiKey, Job
from inferq.shared.settings import Settings
from inferq.shared.storage import get_storage
from inferq.shared.tenants import PREFIX_LENGTH, revoke_key
from tests.helpers.api_client import ApiClient
from tests.helpers.ports import free_port
from tests.helpers.tenant_resources import BATCH, INPUT, LABELLED, job_bodies, tenant_of_key
from tests.integration.test_api_models import hf_folder

pytestmark = pytest.mark.integration

FIXED_NOW = 1_700_000_000.0 // WINDOW_SECONDS * WINDOW_SECONDS + 15  # 15 s into a window
# Scheduling room on a loaded machine when a test checks that something happened by a deadline.
SLACK_SECONDS = 0.5


def error_of(r: TestResponse) -> dict[str, object]:
    body = r.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]  # type: ignore[no-any-return]


def first_401(
    api: ApiClient, headers: dict[str, str], since: float, limit: float = 30.0
) -> tuple[TestResponse, float]:
    """Ask `/v1/files` every 50 ms until it answers 401 (or `limit` s pass): that answer and the seconds
    from `since` (time.monotonic()) to the request that got it."""
    while True:
        asked = time.monotonic()
        r = api.client.get("/v1/files", headers=headers)
        if r.status_code == 401 or asked - since > limit:
            return r, asked - since
        time.sleep(0.05)


def fixed_clock(api: ApiClient, now: float = FIXED_NOW) -> RateLimiter:
    """Give the app's limiter a clock that stands still, so that no window ends during the test."""
    limiter = RateLimiter(api.settings, clock=lambda: now)
    api.app.extensions[EXTENSION] = limiter
    return limiter


# ---- keys ----------------------------------------------------------------------------------------


def test_keys_are_stored_only_as_their_sha256(api: ApiClient) -> None:
    # given a new key
    key = api.new_key("acme")

    # when its row is read
    with session_scope(api.settings) as session:
        rows = session.execute(text("SELECT * FROM api_keys")).mappings().all()

    # then the row holds its sha256 and a short prefix, and the key itself appears nowhere
    assert len(rows) == 1
    row = rows[0]
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:PREFIX_LENGTH] and len(key) > PREFIX_LENGTH + 16
    assert all(key not in str(value) for value in row.values())


def test_inferq_keys_revoke_turns_a_working_key_into_a_401(api: ApiClient, tmp_path: Path) -> None:
    # given a key made by `inferq keys create` that works
    env = {
        **os.environ,
        "INFERQ_DATABASE_URL": api.settings.database_url,
        "INFERQ_DATA_DIR": str(tmp_path),
    }
    cli = [sys.executable, "-m", "inferq.cli"]
    made = subprocess.run(
        [*cli, "keys", "create", "--tenant", "acme"], env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    other = api.new_key("acme")
    headers = api.auth_headers(key)
    assert api.client.get("/v1/files", headers=headers).status_code == 200

    # when it is revoked by its prefix
    revoked = subprocess.run(
        [*cli, "keys", "revoke", key[:PREFIX_LENGTH]], env=env, capture_output=True, text=True
    )

    # then the command says so, the key is a 401 within the API's key cache time (it was used just
    # before), the tenant's other key still works
    revoked_by = time.monotonic()
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stderr
    r, waited = first_401(api, headers, since=revoked_by)
    assert r.status_code == 401
    assert waited <= api.settings.auth_cache_seconds + SLACK_SECONDS
    assert error_of(r)["code"] == "invalid_api_key"
    assert api.client.get("/v1/files", headers=api.auth_headers(other)).status_code == 200
    with session_scope(api.settings) as session:
        assert session.execute(select(func.count()).where(ApiKey.revoked_at.is_not(None))).scalar_one() == 1

    # and revoking it again, or a key that never existed, fails with a message
    for value in (key, "iq_nothere"):
        again = subprocess.run([*cli, "keys", "revoke", value], env=env, capture_output=True, text=True)
        assert again.returncode != 0
        assert "no such key" in again.stderr


def test_a_revoked_key_is_refused_within_the_key_cache_time_and_at_once_without_the_cache(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given two API processes on one database, one remembering keys for 3 s and one not at all, and a
    # key that both have just accepted
    cached = make_client(s3_settings.with_overrides(auth_cache_seconds=3))
    uncached = make_client(s3_settings.with_overrides(auth_cache_seconds=0))
    key = cached.new_key("acme")
    headers = cached.auth_headers(key)
    assert cached.client.get("/v1/files", headers=headers).status_code == 200
    assert uncached.client.get("/v1/files", headers=headers).status_code == 200

    # when the key is revoked
    with session_scope(s3_settings) as session:
        assert revoke_key(session, key) == 1
    revoked_by = time.monotonic()

    # then the process without the cache refuses it at once; the other still accepts it from memory,
    # and refuses it no later than 3 s after the revocation
    assert uncached.client.get("/v1/files", headers=headers).status_code == 401
    assert cached.client.get("/v1/files", headers=headers).status_code == 200
    r, waited = first_401(cached, headers, since=revoked_by)
    assert r.status_code == 401
    assert error_of(r)["code"] == "invalid_api_key"
    assert waited <= 3 + SLACK_SECONDS


def test_a_poll_of_a_job_is_one_statement_once_the_key_is_remembered(api: ApiClient) -> None:
    # given a queued job and its tenant's key, used once
    headers = api.headers_for("acme")
    upload = api.upload(headers, b'{"text": "hi"}\n', filename="in.jsonl")
    assert upload.status_code == 201
    body = {
        "type": "predict",
        "task": "embedding",
        "model": "minilm-l6",
        "input_file": upload.get_json()["id"],
    }
    submitted = api.client.post("/v1/jobs", json=body, headers=headers)
    assert submitted.status_code == 202
    job_id = submitted.get_json()["id"]
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    # when it is polled while the statements sent to the database are recorded
    event.listen(get_engine(api.settings), "before_cursor_execute", seen)
    try:
        r = api.client.get(f"/v1/jobs/{job_id}", headers=headers)
    finally:
        event.remove(get_engine(api.settings), "before_cursor_execute", seen)

    # then it is the job's object, read with one SELECT of the jobs table (the key came from memory)
    assert r.status_code == 200
    assert r.get_json()["id"] == job_id
    assert len(statements) == 1, statements
    assert "FROM jobs" in statements[0]


# ---- rate limit ----------------------------------------------------------------------------------


@pytest.fixture
def limited(make_client: Callable[[Settings], ApiClient], s3_settings: Settings) -> ApiClient:
    """An app that allows 5 requests a minute per tenant."""
    return make_client(s3_settings.with_overrides(rate_limit_per_minute=5))


def test_past_the_rate_limit_a_tenant_gets_429_with_retry_after(limited: ApiClient) -> None:
    # given a limit of 5 requests a minute, counted in Redis, and two tenants
    fixed_clock(limited)
    a, b = limited.headers_for("a"), limited.headers_for("b")

    # when A makes 7 requests within the minute
    answers = [limited.client.get("/v1/files", headers=a) for _ in range(7)]

    # then the first 5 pass and the rest are 429 rate_limited, saying when the window ends
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
    for r in answers[5:]:
        assert error_of(r)["code"] == "rate_limited"
        assert r.headers["Retry-After"] == "45"
    # and B is not limited by A's requests; the counters are short-lived Redis keys
    assert limited.client.get("/v1/jobs", headers=b).status_code == 200
    client = redis.Redis.from_url(limited.settings.broker_url)
    try:
        counters = {k.decode(): int(client.get(k) or 0) for k in client.scan_iter(f"{RATE_KEY_PREFIX}*")}
        assert sorted(counters.values()) == [1, 7]
        assert all(0 < client.ttl(k) <= 2 * WINDOW_SECONDS for k in counters)
    finally:
        client.close()
    # and operations routes need no key and are never limited
    assert all(limited.client.get("/healthz").status_code == 200 for _ in range(10))


def test_a_new_window_lets_the_tenant_in_again(limited: ApiClient) -> None:
    # given a tenant that used its 5 requests
    headers = limited.headers_for("a")
    fixed_clock(limited)
    for _ in range(5):
        assert limited.client.get("/v1/models", headers=headers).status_code == 200
    assert limited.client.get("/v1/models", headers=headers).status_code == 429

    # when the next minute starts
    fixed_clock(limited, FIXED_NOW + WINDOW_SECONDS)

    # then it is served again
    assert limited.client.get("/v1/models", headers=headers).status_code == 200


def test_rate_limit_zero_is_off(make_client: Callable[[Settings], ApiClient], s3_settings: Settings) -> None:
    # given a limit of 0
    api = make_client(s3_settings.with_overrides(rate_limit_per_minute=0))
    headers = api.headers_for()

    # when a tenant makes many requests, then none is refused
    assert all(api.client.get("/v1/models", headers=headers).status_code == 200 for _ in range(30))


def test_without_redis_the_limit_is_counted_in_the_process(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings, embedded_settings: Settings
) -> None:
    # given two apps limited to 3 a minute: one on the embedded broker, one whose Redis is a closed port
    apps = [
        make_client(embedded_settings.with_overrides(rate_limit_per_minute=3)),
        make_client(
            s3_settings.with_overrides(
                rate_limit_per_minute=3, broker_url=f"redis://127.0.0.1:{free_port()}/0"
            )
        ),
    ]
    for api in apps:
        fixed_clock(api)
        headers = api.headers_for()

        # when a tenant makes 4 requests
        answers = [api.client.get("/v1/files", headers=headers).status_code for _ in range(4)]

        # then the limit still holds, and nothing waits on or fails for the missing Redis
        assert answers == [200, 200, 200, 429]


# ---- live-job quota ------------------------------------------------------------------------------


def _tenant_files(
    api: ApiClient, headers: dict[str, str], tmp_path: Path
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Files and a model for every job-creating body of this tenant."""
    from inferq.shared.registry import register_folder
    from inferq.shared.tasks import TEXT_CLASSIFICATION

    ids = {}
    for name, data, purpose in (
        ("input", INPUT, "input"),
        ("training", LABELLED, "training"),
        ("batch", BATCH, "batch"),
    ):
        r = api.upload(headers, data, filename=f"{name}.jsonl", purpose=purpose)
        assert r.status_code == 201, r.get_json()
        ids[name] = r.get_json()["id"]
    tenant = tenant_of_key(api, headers["Authorization"].split()[1])
    with session_scope(api.settings) as session:
        ref = register_folder(
            session, get_storage(api.settings), tenant, "mine", hf_folder(tmp_path / "m"), TEXT_CLASSIFICATION
        ).ref
    return job_bodies(ids["input"], ids["training"], ids["batch"], ref)


def live_jobs(api: ApiClient) -> int:
    with session_scope(api.settings) as session:
        return int(session.execute(select(func.count()).select_from(Job)).scalar_one())


def test_past_the_live_job_quota_every_submit_is_429_and_creates_nothing(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings, tmp_path: Path
) -> None:
    # given a quota of 2 live jobs and a tenant with 2 queued jobs
    api = make_client(s3_settings.with_overrides(max_live_jobs_per_tenant=2))
    headers = api.headers_for("acme")
    bodies = _tenant_files(api, headers, tmp_path)
    path, predict = bodies["predict"]
    for _ in range(2):
        assert api.client.post(path, headers=headers, json=predict).status_code == 202

    # when it submits a job of each kind (predict, train, evaluate, batch)
    for kind, (path, body) in bodies.items():
        r = api.client.post(path, headers=headers, json=body)

        # then each is 429 quota_exceeded with Retry-After, and no job is made
        assert r.status_code == 429, (kind, r.get_json())
        assert error_of(r)["code"] == "quota_exceeded"
        assert int(r.headers["Retry-After"]) >= 1
    assert live_jobs(api) == 2

    # and another tenant is not affected, and a finished job frees its slot
    other = api.headers_for("other")
    other_path, other_predict = _tenant_files(api, other, tmp_path / "o")["predict"]
    assert api.client.post(other_path, headers=other, json=other_predict).status_code == 202
    first = api.client.get("/v1/jobs?limit=1", headers=headers).get_json()["data"][0]["id"]
    assert api.client.post(f"/v1/jobs/{first}/cancel", headers=headers).status_code == 202
    assert api.client.post(path, headers=headers, json=body).status_code == 429  # cancelling is still live
    from inferq.shared import jobs
    from inferq.shared.states import JobStatus

    with session_scope(api.settings) as session:
        assert jobs.transition(session, first, JobStatus.CANCELLED) is not None
    assert api.client.post(path, headers=headers, json=body).status_code == 200  # the batch


def test_concurrent_submits_cannot_overrun_the_quota(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings, tmp_path: Path
) -> None:
    # given a quota of 3 and 8 submits of one tenant at once, each from its own client
    api = make_client(s3_settings.with_overrides(max_live_jobs_per_tenant=3))
    headers = api.headers_for("acme")
    path, body = _tenant_files(api, headers, tmp_path)["predict"]
    statuses: list[int] = []
    start = threading.Barrier(8)

    def submit() -> None:
        client = api.app.test_client()
        start.wait()
        statuses.append(client.post(path, headers=headers, json=body).status_code)

    # when they run
    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # then exactly 3 jobs exist and the other 5 were told 429
    assert sorted(statuses) == [202] * 3 + [429] * 5
    assert live_jobs(api) == 3


# ---- request limits ------------------------------------------------------------------------------


def test_an_upload_with_too_many_records_is_422_and_stores_nothing(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given a limit of 10 records per file
    api = make_client(s3_settings.with_overrides(max_records_per_file=10))
    headers = api.headers_for()
    storage = get_storage(api.settings)

    # when files of 10 and of 11 records are uploaded
    ok = api.upload(headers, b'{"text": "x"}\n' * 10)
    over = api.upload(headers, b'{"text": "x"}\n' * 11, filename="over.jsonl")
    over_csv = api.upload(headers, b"text\n" + b"x\n" * 11, filename="over.csv")

    # then 10 is stored and 11 is 422 too_many_records, with nothing of it in the bucket
    assert ok.status_code == 201, ok.get_json()
    for r in (over, over_csv):
        assert r.status_code == 422, r.get_json()
        assert error_of(r)["code"] == "too_many_records"
    assert list(storage.list("")) == [storage_key_of(api, ok.get_json()["id"])]


def storage_key_of(api: ApiClient, file_id: str) -> str:
    from inferq.shared.models import File

    with session_scope(api.settings) as session:
        return str(session.execute(select(File.storage_key).where(File.id == file_id)).scalar_one())


@pytest.mark.parametrize("name", ["tenant", "tenant_id", "id", "status", "created_at", "output_file"])
def test_server_set_fields_are_400_on_every_creating_endpoint(
    api: ApiClient, tmp_path: Path, name: str
) -> None:
    # given valid bodies of every endpoint that creates a job
    headers = api.headers_for("acme")
    bodies = _tenant_files(api, headers, tmp_path)

    # when each is sent with a field the server sets
    for kind, (path, body) in bodies.items():
        r = api.client.post(path, headers=headers, json={**body, name: "mine"})

        # then it is 400 forbidden_field naming it, and nothing is created
        assert r.status_code == 400, (kind, r.get_json())
        assert (error_of(r)["code"], error_of(r)["field"]) == ("forbidden_field", name), kind
    # and an upload form with such a field is refused as unknown, storing nothing
    from tests.integration.test_api_files import multipart

    before = sorted(get_storage(api.settings).list(""))
    r = api.client.post(
        "/v1/files",
        headers=headers,
        data=multipart([(name, None, b"x"), ("purpose", None, b"input"), ("file", "a.jsonl", INPUT)]),
        content_type="multipart/form-data; boundary=inferq-boundary",
    )
    assert r.status_code == 400
    assert error_of(r)["field"] == name
    assert sorted(get_storage(api.settings).list("")) == before
    assert live_jobs(api) == 0


def test_unknown_fields_are_400_on_every_creating_endpoint(api: ApiClient, tmp_path: Path) -> None:
    # given valid bodies of every endpoint that creates a job
    headers = api.headers_for("acme")
    bodies = _tenant_files(api, headers, tmp_path)

    # when each has a field no endpoint knows
    for kind, (path, body) in bodies.items():
        r = api.client.post(path, headers=headers, json={**body, "colour": "red"})

        # then it is 400 unknown_field naming it
        assert r.status_code == 400, (kind, r.get_json())
        assert (error_of(r)["code"], error_of(r)["field"]) == ("unknown_field", "colour"), kind
    assert live_jobs(api) == 0
