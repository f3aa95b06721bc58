"""Webhooks: a job that ends POSTs its object, signed, to a real HTTP receiver in the test; failed attempts
are retried with backoff and each attempt is a job event. On Postgres, Redis and moto S3."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select

from shared import jobs, queue
from shared.db import session_scope
from shared.ids import new_id
from shared.models import Job, JobEvent, Tenant, WebhookDelivery, utcnow
from shared.queue_depth import queue_depths
from shared.settings import Settings, get_settings
from tests.helpers.tenant_http import tenant_headers, tenant_http
from worker.reconciler import reconcile
from worker.webhooks import deliver

pytestmark = pytest.mark.integration

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


# ---- a real receiver -------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server on a free port that answers `fail_first` requests with 500, then 200."""

    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.1)
        raise AssertionError(f"the receiver got {len(self.requests)} requests, not {count}, in {timeout}s")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(
                Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
            )
            code = 500 if len(state.requests) <= state.fail_first else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/inferq"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def signature_ok(secret: str, request: Received) -> bool:
    """Standard Webhooks, checked here from the spec (not with inferq's own code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    )
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, request.headers["webhook-signature"])


# ---- the service -----------------------------------------------------------------------------------


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    return make_worker_settings(
        INFERQ_WEBHOOK_BACKOFF_SECONDS="1", INFERQ_WEBHOOK_TIMEOUT="5", INFERQ_WEBHOOK_MAX_ATTEMPTS="4"
    )


@dataclass
class Tenant_:
    client: FlaskClient
    headers: dict[str, str]


@pytest.fixture
def tenant(worker_settings: Settings) -> Tenant_:
    return Tenant_(*tenant_http(worker_settings, "hooks"))


def upload(t: Tenant_, data: bytes) -> str:
    r = t.client.post(
        "/v1/files",
        headers=t.headers,
        data={"purpose": "input", "file": (io.BytesIO(data), "in.jsonl")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def submit(t: Tenant_, **body: Any) -> dict[str, Any]:
    r = t.client.post("/v1/jobs", headers=t.headers, json={"type": "predict", "task": "embedding", **body})
    assert r.status_code == 202, r.get_json()
    return dict(r.get_json())


def webhook_events(t: Tenant_, job_id: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = t.client.get(f"/v1/jobs/{job_id}/events", headers=t.headers).get_json()["data"]
        hooks = [e for e in events if e["kind"] == "webhook"]
        if len(hooks) >= count:
            return hooks
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} has {len(hooks)} webhook events, not {count}, after {timeout}s")


def sentences(n: int) -> bytes:
    return b"".join(
        json.dumps({"id": f"s{i}", "text": f"sentence number {i}"}).encode() + b"\n" for i in range(n)
    )


def deliveries(settings: Settings, job_id: str) -> list[WebhookDelivery]:
    with session_scope(settings) as session:
        return list(
            session.execute(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).scalars()
        )


def failed_job(settings: Settings, webhook_url: str | None) -> str:
    """A queued job of tenant `hooks` that the worker has not seen (no message sent for it)."""
    with session_scope(settings) as session:
        tenant_id = session.execute(select(Tenant.id).where(Tenant.name == "hooks")).scalar_one()
        job = jobs.create(
            session,
            Job(
                id=new_id("job"),
                tenant_id=tenant_id,
                type="predict",
                task="embedding",
                model="minilm-l6:1",
                webhook_url=webhook_url,
                created_at=utcnow(),
                sent_at=utcnow(),  # so that the reconciler does not plan it meanwhile
            ),
        )
        return job.id


# ---- tests -----------------------------------------------------------------------------------------


def test_a_job_that_ends_posts_its_signed_object_and_retries_until_the_receiver_accepts(
    tenant: Tenant_, celery_worker: Any, receiver: Receiver
) -> None:
    # given: a receiver that fails twice and then accepts, and a job that names it
    receiver.fail_first = 2
    file_id = upload(tenant, sentences(5))
    secret = tenant.client.get("/v1/webhook_secret", headers=tenant.headers).get_json()["secret"]

    # when: the job runs to its end
    job = submit(tenant, model="minilm-l6", input_file=file_id, webhook_url=receiver.url)
    requests = receiver.wait_for(3)
    events = webhook_events(tenant, job["id"], 3)

    # then: three attempts of one message (same webhook-id), each signed with the tenant's secret
    final = tenant.client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).get_json()
    assert final["status"] == "succeeded"
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert all(signature_ok(secret, r) for r in requests)
    assert all(abs(int(r.headers["webhook-timestamp"]) - r.at) < 5 for r in requests)
    assert all(r.headers["content-type"] == "application/json" for r in requests)
    # and: the body is the job object, as GET /v1/jobs/{id} serves it
    assert all(json.loads(r.body) == final for r in requests)
    # and: the retries waited with exponential backoff (1 s, then 2 s)
    assert requests[1].at - requests[0].at >= 0.9
    assert requests[2].at - requests[1].at >= 1.9
    # and: each attempt is a job event with its status code
    assert [e["data"]["attempt"] for e in events] == [1, 2, 3]
    assert [e["data"]["status_code"] for e in events] == [500, 500, 200]
    assert [e["data"]["outcome"] for e in events] == ["pending", "pending", "delivered"]
    assert all(e["data"]["event"] == "job.succeeded" for e in events)
    [row] = deliveries(get_settings(), job["id"])
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    assert row.id == requests[0].headers["webhook-id"]
    # and: nothing more arrives
    time.sleep(1.5)
    assert len(receiver.requests) == 3


def test_attempts_are_bounded_and_a_failed_job_is_delivered_too(
    tenant: Tenant_, celery_worker: Any, receiver: Receiver, worker_settings: Settings
) -> None:
    # given: a receiver that always fails (at most 4 attempts in these settings)
    receiver.fail_first = 100
    job_id = failed_job(worker_settings, receiver.url)

    # when: the job fails
    with session_scope(worker_settings) as session:
        assert jobs.fail_job(session, job_id, "input_file_missing", "the input file was deleted")

    # then: 4 attempts, then the delivery is given up
    events = webhook_events(tenant, job_id, 4, timeout=90)
    assert [e["data"]["outcome"] for e in events] == ["pending", "pending", "pending", "failed"]
    assert all(e["data"]["event"] == "job.failed" for e in events)
    body = json.loads(receiver.requests[0].body)
    assert body["status"] == "failed" and body["error"]["code"] == "input_file_missing"
    time.sleep(2)
    assert len(receiver.requests) == 4
    [row] = deliveries(worker_settings, job_id)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 4, 500)


def test_the_message_is_sent_only_after_the_commit_and_a_lost_one_is_resent_by_the_reconciler(
    tenant: Tenant_, receiver: Receiver, worker_settings: Settings
) -> None:
    # given: a job with a webhook, ended by a transaction that rolls back
    job_id = failed_job(worker_settings, receiver.url)
    with pytest.raises(RuntimeError), session_scope(worker_settings) as session:
        assert jobs.fail_job(session, job_id, "boom", "rolled back")
        raise RuntimeError("the transaction fails")
    # then: no delivery and no message
    assert deliveries(worker_settings, job_id) == []
    assert queue_depths(worker_settings)[queue.QUEUE_CONTROL] == 0

    # when: it ends for real
    with session_scope(worker_settings) as session:
        assert jobs.fail_job(session, job_id, "boom", "failed for real")
        assert queue_depths(worker_settings)[queue.QUEUE_CONTROL] == 0  # not before the commit
    # then: one delivery row and one message, sent after the commit
    assert len(deliveries(worker_settings, job_id)) == 1
    assert queue_depths(worker_settings)[queue.QUEUE_CONTROL] == 1

    # when: the broker loses the message and the reconciler runs
    redis.Redis.from_url(worker_settings.broker_url).flushdb()
    report = reconcile(worker_settings, resend_after=0)
    # then: it is sent again from the row, delivered once; a duplicate message does nothing
    assert report.webhooks == 1
    [row] = deliveries(worker_settings, job_id)
    assert deliver(row.id, worker_settings) == "delivered"
    assert deliver(row.id, worker_settings) == "skipped"
    assert len(receiver.requests) == 1
    assert reconcile(worker_settings, resend_after=0).webhooks == 0


def test_a_job_without_a_webhook_url_has_no_delivery(tenant: Tenant_, worker_settings: Settings) -> None:
    job_id = failed_job(worker_settings, None)
    with session_scope(worker_settings) as session:
        assert jobs.fail_job(session, job_id, "boom", "failed")
        kinds = list(session.execute(select(JobEvent.kind).where(JobEvent.job_id == job_id)).scalars())
    assert deliveries(worker_settings, job_id) == []
    assert "webhook" not in kinds
    assert queue_depths(worker_settings)[queue.QUEUE_CONTROL] == 0


def test_the_webhook_secret_is_made_once_per_tenant_and_can_be_rotated(tenant: Tenant_) -> None:
    # when: the secret is read twice, and by another tenant
    first = tenant.client.get("/v1/webhook_secret", headers=tenant.headers)
    again = tenant.client.get("/v1/webhook_secret", headers=tenant.headers).get_json()["secret"]
    other = tenant.client.get("/v1/webhook_secret", headers=tenant_headers(get_settings(), "someone-else"))

    # then: one stable secret per tenant, in the Standard Webhooks format
    assert first.status_code == 200
    secret = first.get_json()["secret"]
    assert first.get_json() == {"object": "webhook_secret", "secret": secret, "signature_version": "v1"}
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert again == secret
    assert other.get_json()["secret"] != secret

    # when: it is rotated, then it is new and stays so
    rotated = tenant.client.post("/v1/webhook_secret/rotate", headers=tenant.headers).get_json()["secret"]
    assert rotated != secret
    assert tenant.client.get("/v1/webhook_secret", headers=tenant.headers).get_json()["secret"] == rotated
    # and: it needs a key
    assert tenant.client.get("/v1/webhook_secret").status_code == 401
