"""Deliver a job's webhook: POST the job object, signed Standard-Webhooks style, and record the attempt.

The outbox row and its state are `shared/webhooks.py`'s; this module does one attempt: claim it, post
the job object (the same JSON as `GET /v1/jobs/{id}`), then record the outcome on the row and as a
`webhook` job event, and send the retry after its backoff. It runs on a delivery thread of the worker
process (`worker/webhook_pool.py`), never on the thread that runs inference.

The POST goes through `shared.egress`: the URL and every address its host resolves to are vetted again
(DNS may have changed since the submit), the connection goes to a vetted address (TLS still checks the
URL's hostname), no redirect is followed, and `INFERQ_WEBHOOK_TIMEOUT_SECONDS` bounds the whole attempt
(lookup, connect, TLS, request and answer), not each read. What the tenant sees (job events, the row's
`last_error`) is only "delivered (status N)" or "delivery failed (status N | could not connect | timed
out | address not allowed | invalid response | invalid URL)": never the receiver's answer or an
exception's text, which go to the operator log. A URL or address that is not allowed is given up at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import httpcore

from inferq.shared import egress, jobs, queue, webhooks
from inferq.shared.db import session_scope
from inferq.shared.job_objects import job_object
from inferq.shared.logs import log_ids
from inferq.shared.models import Job
from inferq.shared.settings import Settings
from inferq.shared.webhook_signature import headers as signature_headers
from inferq.worker import metrics

log = logging.getLogger(__name__)

USER_AGENT = "inferq-webhooks/0.1"
# The answer's body is read (and dropped) up to this many bytes, within the deadline.
MAX_ANSWER_BYTES = 64 * 1024
INVALID_RESPONSE = "invalid response"


@dataclass(frozen=True)
class Answer:
    """How one POST went: a status code, or a failure the tenant may see; `detail` is for the log."""

    status_code: int | None
    failure: str | None = None
    detail: str | None = None
    final: bool = False  # the URL can never work under these settings: give up at once

    def describe(self) -> str:
        if self.status_code is not None:
            verb = "delivered" if 200 <= self.status_code < 300 else "delivery failed"
            return f"{verb} (status {self.status_code})"
        return f"delivery failed ({self.failure})"


def body_of(job: Job) -> bytes:
    """The delivered bytes: the job object as compact UTF-8 JSON (what the signature covers)."""
    return json.dumps(job_object(job), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _send(
    target: egress.Target,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    backend: egress.VettedBackend,
    timeout: float,
) -> int:
    """The POST itself through `backend`; the status code once the answer (up to its cap) has arrived."""
    url = httpcore.URL(scheme=target.scheme, host=target.host, port=target.port, target=target.target)
    timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    with httpcore.ConnectionPool(
        ssl_context=egress.ssl_context(), network_backend=backend, retries=0, max_connections=1
    ) as pool:
        with pool.stream(
            "POST", url, headers=headers, content=body, extensions={"timeout": timeouts}
        ) as response:
            received = 0
            for chunk in response.iter_stream():
                received += len(chunk)
                if received >= MAX_ANSWER_BYTES:
                    break
            return int(response.status)


def post(url: str, secret: str, msg_id: str, body: bytes, settings: Settings) -> Answer:
    """One POST under the webhook egress policy and one total deadline; never raises for the network."""
    policy = webhooks.egress_policy(settings)
    timeout = float(settings.webhook_timeout_seconds)
    deadline = egress.Deadline(timeout)
    try:
        target = egress.check_url(url, policy)
        headers = [
            (b"Host", target.netloc),
            *((k.encode(), v.encode()) for k, v in signature_headers(secret, msg_id, body).items()),
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT.encode()),
        ]
        return Answer(_send(target, headers, body, egress.VettedBackend(policy, deadline), timeout))
    except (egress.ResolveFailed, egress.ResolveTimeout) as e:
        return Answer(None, e.reason, str(e))
    except egress.Refused as e:
        return Answer(None, e.reason, str(e), final=True)
    except httpcore.TimeoutException as e:
        return Answer(None, egress.TIMED_OUT, f"{type(e).__name__}: {e}")
    except httpcore.ProtocolError as e:
        return Answer(None, INVALID_RESPONSE, f"{type(e).__name__}: {e}")
    except Exception as e:  # connection errors and anything else the network brings: retried
        return Answer(None, egress.COULD_NOT_CONNECT, f"{type(e).__name__}: {e}")


def deliver(delivery_id: str, settings: Settings) -> str:
    """One attempt. Returns delivered, pending (a retry is scheduled), failed (gave up) or skipped."""
    with session_scope(settings) as session:
        taken = webhooks.claim(session, delivery_id, settings)
        if taken is None:
            return "skipped"
        job = session.get(Job, taken.job_id)
        assert job is not None  # the delivery row is deleted with its job
        body = body_of(job)
        secret = webhooks.tenant_secret(session, taken.tenant_id)
    ids = log_ids(taken.job_id, delivery_id=delivery_id)
    answer = post(taken.url, secret, delivery_id, body, settings)
    answered = answer.describe()
    if answer.detail is not None:  # the operator's log only: what the network said
        log.warning(
            "webhook %s of job %s attempt %d to %s: %s (%s)",
            delivery_id,
            taken.job_id,
            taken.attempt,
            taken.url,
            answered,
            answer.detail,
            extra=ids,
        )

    with session_scope(settings) as session:
        outcome = webhooks.record_attempt(
            session, taken, settings, answer.status_code, answer.failure, final=answer.final
        )
        jobs.record_event(
            session,
            taken.job_id,
            "webhook",
            f"webhook {taken.event} attempt {taken.attempt}: {answered} ({outcome.status})",
            {
                "delivery_id": delivery_id,
                "event": taken.event,
                "attempt": taken.attempt,
                "status_code": answer.status_code,
                "error": answer.failure,
                "outcome": outcome.status,
                "retry_in_seconds": outcome.retry_in,
            },
        )
    metrics.webhook_attempt(outcome.status)
    if outcome.retry_in is not None:
        log.info(
            "webhook %s of job %s: attempt %d got %s; retry in %ds",
            delivery_id,
            taken.job_id,
            taken.attempt,
            answered,
            outcome.retry_in,
            extra=ids,
        )
        queue.try_send(queue.TASK_WEBHOOK, [delivery_id], countdown=outcome.retry_in, settings=settings)
    elif outcome.status == webhooks.FAILED:
        log.warning(
            "webhook %s of job %s: gave up after attempt %d (%s)",
            delivery_id,
            taken.job_id,
            taken.attempt,
            answered,
            extra=ids,
        )
    else:
        log.info("webhook %s of job %s delivered (%s)", delivery_id, taken.job_id, answered, extra=ids)
    return outcome.status
