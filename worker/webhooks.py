"""Deliver a job's webhook: POST the job object, signed Standard-Webhooks style, and record the attempt.

The outbox row and its state are `shared/webhooks.py`'s; this module does one attempt: claim it, post
the job object (the same JSON as `GET /v1/jobs/{id}`) with a short timeout and no redirects, then record
the outcome on the row and as a `webhook` job event, and send the retry after its backoff.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import httpx

from shared import jobs, queue, webhooks
from shared.db import session_scope
from shared.job_objects import job_object
from shared.logs import log_ids
from shared.models import Job
from shared.settings import Settings
from shared.webhook_signature import headers as signature_headers
from worker import metrics

log = logging.getLogger(__name__)

USER_AGENT = "inferq-webhooks/0.1"
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_ERROR_LENGTH = 300
SCHEMES = ("http", "https")


def body_of(job: Job) -> bytes:
    """The delivered bytes: the job object as compact UTF-8 JSON (what the signature covers)."""
    return json.dumps(job_object(job), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post(url: str, secret: str, msg_id: str, body: bytes, timeout: float) -> tuple[int | None, str | None]:
    """One POST: (status code, None) when the receiver answered, (None, why) when it could not be reached."""
    request_headers = {
        **signature_headers(secret, msg_id, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    try:
        response = httpx.post(
            url,
            content=body,
            headers=request_headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
            follow_redirects=False,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        return None, f"{type(e).__name__}: {e}"[:MAX_ERROR_LENGTH]
    return response.status_code, None


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

    if urlsplit(taken.url).scheme.lower() in SCHEMES:
        status_code, error = post(taken.url, secret, delivery_id, body, settings.webhook_timeout_seconds)
        final = False
    else:  # refused at submit; never posted anywhere else
        status_code, error, final = None, "webhook_url is not an http or https URL", True

    with session_scope(settings) as session:
        outcome = webhooks.record_attempt(session, taken, settings, status_code, error, final=final)
        answered = f"HTTP {status_code}" if status_code is not None else error
        jobs.record_event(
            session,
            taken.job_id,
            "webhook",
            f"webhook {taken.event} attempt {taken.attempt}: {answered} ({outcome.status})",
            {
                "delivery_id": delivery_id,
                "event": taken.event,
                "attempt": taken.attempt,
                "status_code": status_code,
                "error": error,
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
