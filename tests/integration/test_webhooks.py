"""Webhooks: a job that ends POSTs its object, signed, to a real HTTP receiver in the test; failed attempts
are retried with backoff and each attempt is a job event. On Postgres, Redis and moto S3.

The receivers listen on 127.0.0.1 over plain http, which the service refuses by default: these tests set
`INFERQ_WEBHOOK_ALLOW_HTTP` and `INFERQ_WEBHOOK_ALLOWED_NETWORKS=127.0.0.1/32`, as an operator with an
internal receiver would, except where a test is about what is refused."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select

from inferq.shared import egress, jobs, queue
from inferq.shared.db import session_scope
from inferq.shared.ids import new_id
from inferq.shared.models import Job, JobEvent, Tenant, WebhookDelivery, utcnow
from inferq.shared.queue_depth import queue_depths
from inferq.shared.settings import Settings, get_settings
from inferq.worker import webhook_pool
from inferq.worker.reconciler import reconcile
from inferq.worker.webhooks import deliver
from tests.helpers.ports import free_port
from tests.helpers.tenant_http import tenant_headers, tenant_http

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
    """An HTTP server on a free port that answers `fail_first` requests with 500, then 200 (or does what
    its test's `respond` says)."""

    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.1)
        raise AssertionError(f"the receiver got {len(self.requests)} requests, not {count}, in {timeout}s")


Respond = Callable[[BaseHTTPRequestHandler, Receiver], None]


def answer_500_then_200(handler: BaseHTTPRequestHandler, state: Receiver) -> None:
    code = 500 if len(state.requests) <= state.fail_first else 200
    handler.send_response(code)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


@contextmanager
def serve(respond: Respond = answer_500_then_200, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 that records each POST, then lets `respond` answer it (over TLS with
    `tls`: its URL then says https); stopped after."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(
                Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
            )
            respond(self, state)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "http" if tls is None else "https"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hooks/inferq"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve() as state:
        yield state


@pytest.fixture
def make_receiver() -> Iterator[Callable[[Respond], Receiver]]:
    """A factory of receivers that answer as the test says; all stopped after the test."""
    servers: list[AbstractContextManager[Receiver]] = []

    def make(respond: Respond) -> Receiver:
        server = serve(respond)
        servers.append(server)
        return server.__enter__()

    yield make
    for server in servers:
        server.__exit__(None, None, None)


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
    return make_worker_settings(**WEBHOOK_ENV)


# Local receivers over http, as an operator allows them; attempts bounded and quick.
WEBHOOK_ENV = {
    "INFERQ_WEBHOOK_BACKOFF_SECONDS": "1",
    "INFERQ_WEBHOOK_TIMEOUT_SECONDS": "5",
    "INFERQ_WEBHOOK_MAX_ATTEMPTS": "4",
    "INFERQ_WEBHOOK_ALLOW_HTTP": "true",
    "INFERQ_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
}


@pytest.fixture(autouse=True)
def delivery_threads(worker_settings: Settings) -> Iterator[None]:
    """Deliveries run on this process's pool threads: let them end before the test's rows are removed."""
    yield
    webhook_pool.shutdown(wait=True)


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


# ---- what a webhook may reach (SSRF) ---------------------------------------------------------------


def ended(settings: Settings, webhook_url: str) -> tuple[str, str]:
    """A job of tenant `hooks` with `webhook_url`, failed now: (job id, its delivery id)."""
    job_id = failed_job(settings, webhook_url)
    with session_scope(settings) as session:
        assert jobs.fail_job(session, job_id, "boom", "failed")
    [row] = deliveries(settings, job_id)
    return job_id, row.id


def tenant_visible(t: Tenant_, job_id: str) -> str:
    """All the tenant can read about the job: its object and its events, as text."""
    job = t.client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()
    events = t.client.get(f"/v1/jobs/{job_id}/events", headers=t.headers).get_json()
    return json.dumps([job, events])


INTERNAL_WEBHOOK_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.1/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.0.0.1:5432/",
    "http://[::ffff:127.0.0.1]:6379/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://100.64.0.1/",
    "http://localhost:5432/",
    "http://nonexistent.invalid/hook",  # does not resolve: refused at submit too
    "https://user:password@8.8.8.8/hook",
]


def test_submit_refuses_webhook_urls_that_point_inside_or_are_not_https(
    worker_settings: Settings,
) -> None:
    # given: a server that allows http receivers but no internal network, and one with the defaults
    http_allowed = Tenant_(*tenant_http(worker_settings.with_overrides(webhook_allowed_networks=()), "hooks"))
    defaults = Tenant_(
        *tenant_http(
            worker_settings.with_overrides(webhook_allowed_networks=(), webhook_allow_http=False), "hooks"
        )
    )
    file_id = upload(http_allowed, sentences(2))
    cases = [(http_allowed, url, "predict") for url in INTERNAL_WEBHOOK_URLS]
    cases += [
        (http_allowed, "http://169.254.169.254/latest/meta-data/", kind) for kind in ("train", "evaluate")
    ]
    cases += [(defaults, "http://8.8.8.8/hook", "predict")]

    for t, url, kind in cases:
        # when: a job names the URL
        body: dict[str, Any] = {"type": kind, "model": "minilm-l6", "input_file": file_id, "webhook_url": url}
        if kind == "predict":
            body["task"] = "embedding"
        elif kind == "evaluate":
            body["task"] = "text-classification"
        else:
            body.update(task="text-classification", training_file=file_id, model_name="m1")
            del body["input_file"], body["model"]
        r = t.client.post("/v1/jobs", headers=t.headers, json=body)

        # then: 400 on webhook_url, in the error shape, and no job
        assert r.status_code == 400, (url, kind, r.get_json())
        error = r.get_json()["error"]
        assert (error["code"], error["field"]) == ("invalid_value", "webhook_url"), (url, error)
        assert "169.254" not in error["message"] and "refused" not in error["message"].lower()
    assert http_allowed.client.get("/v1/jobs", headers=http_allowed.headers).get_json()["data"] == []


def test_a_name_that_rebinds_to_an_internal_address_after_the_submit_is_not_contacted(
    make_worker_settings: Callable[..., Settings], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: http allowed but no internal network, and a name that resolves to a public address at the
    # submit and to the receiver's loopback address afterwards (DNS rebinding)
    settings = make_worker_settings(**{**WEBHOOK_ENV, "INFERQ_WEBHOOK_ALLOWED_NETWORKS": ""})
    t = Tenant_(*tenant_http(settings, "hooks"))
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.215.14"] if len(lookups) == 1 else ["127.0.0.1"]

    monkeypatch.setattr(egress, "system_resolve", rebinding)
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://hooks.rebind.test:{port}/hooks/inferq"

    # when: a job names it (accepted: the name is public now), ends, and its webhook is delivered
    job = submit(t, model="minilm-l6", input_file=upload(t, sentences(2)), webhook_url=url)
    with session_scope(settings) as session:
        assert jobs.fail_job(session, job["id"], "boom", "failed")
    [row] = deliveries(settings, job["id"])
    outcome = deliver(row.id, settings)

    # then: the name was looked up again at the delivery, refused, and the receiver never contacted
    assert lookups == ["hooks.rebind.test", "hooks.rebind.test"]
    assert receiver.requests == []
    # and: given up at once, with nothing but "address not allowed" for the tenant
    assert outcome == "failed"
    [event] = webhook_events(t, job["id"], 1)
    assert event["message"] == "webhook job.failed attempt 1: delivery failed (address not allowed) (failed)"
    assert (event["data"]["status_code"], event["data"]["error"]) == (None, "address not allowed")
    [row] = deliveries(settings, job["id"])
    assert (row.status, row.last_error) == ("failed", "address not allowed")


def test_a_redirect_is_not_followed(
    tenant: Tenant_, worker_settings: Settings, make_receiver: Callable[[Respond], Receiver]
) -> None:
    # given: a receiver that redirects to another one
    target = make_receiver(answer_500_then_200)

    def redirect(handler: BaseHTTPRequestHandler, state: Receiver) -> None:
        handler.send_response(307)
        handler.send_header("Location", target.url)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    redirecting = make_receiver(redirect)
    job_id, delivery_id = ended(worker_settings, redirecting.url)

    # when: the webhook is delivered
    assert deliver(delivery_id, worker_settings) == "pending"

    # then: the redirect is an answer like any non-2xx one, and its target is never contacted
    assert len(redirecting.requests) == 1 and target.requests == []
    [event] = webhook_events(tenant, job_id, 1)
    assert event["message"] == "webhook job.failed attempt 1: delivery failed (status 307) (pending)"
    assert event["data"]["status_code"] == 307


def test_what_the_tenant_sees_of_a_failed_delivery_is_never_the_receivers_answer(
    tenant: Tenant_, worker_settings: Settings, make_receiver: Callable[[Respond], Receiver]
) -> None:
    # given: a receiver that answers 500 with a revealing body, a port where something that is not HTTP
    # answers, and a port where nothing listens
    def banner_500(handler: BaseHTTPRequestHandler, state: Receiver) -> None:
        body = b"PostgreSQL 15.2 on 10.1.2.3: internal banner"
        handler.send_response(500, "Internal banner")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def not_http(handler: BaseHTTPRequestHandler, state: Receiver) -> None:
        handler.wfile.write(b"SSH-2.0-OpenSSH_9.6 banner\r\n")
        handler.wfile.flush()
        handler.close_connection = True

    urls = [make_receiver(banner_500).url, make_receiver(not_http).url, f"http://127.0.0.1:{free_port()}/x"]
    expected = [
        "delivery failed (status 500)",
        "delivery failed (invalid response)",
        "delivery failed (could not connect)",
    ]

    for url, message in zip(urls, expected, strict=True):
        # when: a job's webhook goes there
        job_id, delivery_id = ended(worker_settings, url)
        deliver(delivery_id, worker_settings)

        # then: the event says only how it failed
        [event] = webhook_events(tenant, job_id, 1)
        assert event["message"] == f"webhook job.failed attempt 1: {message} (pending)"
        seen = tenant_visible(tenant, job_id)
        for leak in ("PostgreSQL", "banner", "10.1.2.3", "OpenSSH", "refused", "Errno", "Error", "Internal"):
            assert leak not in seen, (url, leak)
        [row] = deliveries(worker_settings, job_id)
        assert row.last_error in (None, "invalid response", "could not connect")


def test_a_receiver_that_trickles_is_cut_at_the_total_deadline_and_holds_no_one_s_jobs(
    make_worker_settings: Callable[..., Settings],
    celery_worker: Any,
    make_receiver: Callable[[Respond], Receiver],
) -> None:
    # given: a 2 s total deadline per attempt, and a receiver that answers one byte a second for a minute
    settings = make_worker_settings(**{**WEBHOOK_ENV, "INFERQ_WEBHOOK_TIMEOUT_SECONDS": "2"})
    hooks = Tenant_(*tenant_http(settings, "hooks"))
    other = Tenant_(*tenant_http(settings, "other"))

    def trickle(handler: BaseHTTPRequestHandler, state: Receiver) -> None:
        with contextlib.suppress(OSError):  # the sender hangs up
            for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 60:
                if state.stop.wait(1.0):
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()

    slow = make_receiver(trickle)
    file_id = upload(other, sentences(5))

    # when: a job of tenant `hooks` ends and its webhook goes to the trickling receiver ...
    job_id, _ = ended(settings, slow.url)
    slow.wait_for(1, timeout=30)
    # ... and meanwhile another tenant submits a prediction job
    submitted = time.monotonic()
    job = submit(other, model="minilm-l6", input_file=file_id)
    while time.monotonic() - submitted < 40:
        status = other.client.get(f"/v1/jobs/{job['id']}", headers=other.headers).get_json()["status"]
        if status in TERMINAL:
            break
        time.sleep(0.2)
    took = time.monotonic() - submitted

    # then: the other tenant's job finished promptly, long before the receiver would have answered
    assert status == "succeeded"
    assert took < 30, took
    # and: the attempt was cut at the deadline (2 s, not a minute), as "timed out"
    [event, *_] = webhook_events(hooks, job_id, 1)
    assert event["message"] == "webhook job.failed attempt 1: delivery failed (timed out) (pending)"
    ended_at = datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).timestamp()
    assert ended_at - slow.requests[0].at < 2 + 1.5, ended_at - slow.requests[0].at


def self_signed(name: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the DNS name `name` and its key: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now().astimezone()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now.replace(year=now.year - 1))
        .not_valid_after(now.replace(year=now.year + 1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_goes_to_the_vetted_address_and_tls_still_verifies_the_urls_hostname(
    tenant: Tenant_, worker_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: an https receiver on 127.0.0.1 with a certificate for hooks.test (trusted by the worker),
    # and two names that resolve to it: hooks.test and another.test
    cert, key = self_signed("hooks.test", tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setattr(egress, "ssl_context", lambda: ssl.create_default_context(cafile=str(cert)))
    monkeypatch.setattr(egress, "system_resolve", lambda host, port: ["127.0.0.1"])
    with serve(tls=server_tls) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]

        # when: one job's webhook names hooks.test, another's another.test
        _, good = ended(worker_settings, f"https://hooks.test:{port}/hooks/inferq")
        bad_job, bad = ended(worker_settings, f"https://another.test:{port}/hooks/inferq")

        # then: the name the certificate is for is delivered, over TLS, with that name as the Host
        assert deliver(good, worker_settings) == "delivered"
        assert [r.headers["host"] for r in receiver.requests] == [f"hooks.test:{port}"]
        # and: the other name reaches the same address but fails the certificate check: not delivered
        assert deliver(bad, worker_settings) == "pending"
        assert len(receiver.requests) == 1
    [event] = webhook_events(tenant, bad_job, 1)
    assert event["message"] == "webhook job.failed attempt 1: delivery failed (could not connect) (pending)"
