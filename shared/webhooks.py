"""Job webhooks: the tenant's signing secret and the delivery outbox (`webhook_deliveries` rows).

When a job reaches a terminal state, `shared.jobs.transition` calls `on_terminal`, which writes a
`pending` delivery row in that same transaction and sends `deliver_webhook` on the control queue only
once the transaction has committed (`shared.after_commit`). A message lost on the way, or a worker that
dies mid-attempt, is covered by the reconciler, which re-sends every `pending` delivery that is overdue
(`overdue`). The worker (`worker/webhooks.py`) takes an attempt with
`claim`, posts the signed job object, and stores the outcome with `record_attempt`; a failed attempt is
retried after `backoff_seconds` (doubling from `INFERQ_WEBHOOK_BACKOFF_SECONDS`, at most an hour) until
`INFERQ_WEBHOOK_MAX_ATTEMPTS`. Job events record each attempt (`worker/webhooks.py`).

Where a webhook may go is `shared/egress.py`'s policy with the webhook settings (`egress_policy`): https
only (`INFERQ_WEBHOOK_ALLOW_HTTP` admits http), public addresses only (`INFERQ_WEBHOOK_ALLOWED_NETWORKS`
admits internal receivers); the API checks it at submit, the worker again at every attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from inferq.shared import egress, queue
from inferq.shared.after_commit import send_after_commit
from inferq.shared.ids import new_id
from inferq.shared.models import Job, Tenant, WebhookDelivery, utcnow
from inferq.shared.settings import Settings
from inferq.shared.webhook_signature import new_secret

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
MAX_BACKOFF_SECONDS = 3600
# A message may arrive a little before the row's due time (clocks of different hosts).
EARLY_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class Claim:
    """One attempt at a delivery, taken by one worker."""

    delivery_id: str
    job_id: str
    tenant_id: str
    url: str
    event: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered | failed (gave up) | pending (will retry)
    retry_in: int | None  # seconds until the next attempt, when pending


def egress_policy(settings: Settings) -> egress.Policy:
    """Where webhooks may be sent under these settings."""
    return egress.Policy(
        allow_http=settings.webhook_allow_http,
        allowed_networks=settings.webhook_allowed_networks,
        resolve_seconds=min(float(settings.webhook_timeout_seconds), egress.DEFAULT_RESOLVE_SECONDS),
    )


def event_type(job_status: str) -> str:
    return f"job.{job_status}"


def backoff_seconds(attempt: int, base: int) -> int:
    """Delay after failed attempt `attempt` (1-based): base, 2·base, 4·base, … at most an hour."""
    return int(min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempt - 1)))


# ---- the tenant's secret ---------------------------------------------------------------------------


def tenant_secret(session: Session, tenant_id: str) -> str:
    """The tenant's signing secret, made on first use (two first uses at once agree on one)."""
    secret = session.execute(select(Tenant.webhook_secret).where(Tenant.id == tenant_id)).scalar_one()
    if secret:
        return str(secret)
    session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.webhook_secret.is_(None))
        .values(webhook_secret=new_secret())
    )
    return str(session.execute(select(Tenant.webhook_secret).where(Tenant.id == tenant_id)).scalar_one())


def rotate_secret(session: Session, tenant_id: str) -> str:
    """A new secret for the tenant; deliveries from now on are signed with it."""
    secret = new_secret()
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(webhook_secret=secret))
    return secret


# ---- the outbox ------------------------------------------------------------------------------------


def on_terminal(session: Session, job_id: str, job_status: str) -> str | None:
    """In the transaction that ends the job: the delivery row, sent after the commit. None: no webhook."""
    row = session.execute(select(Job.webhook_url, Job.tenant_id).where(Job.id == job_id)).one()
    if not row.webhook_url:
        return None
    now = utcnow()
    delivery = WebhookDelivery(
        id=new_id("msg"),
        job_id=job_id,
        tenant_id=row.tenant_id,
        url=row.webhook_url,
        event=event_type(job_status),
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        sent_at=now,
        created_at=now,
    )
    session.add(delivery)
    send_after_commit(session, queue.TASK_WEBHOOK, [delivery.id], "webhook delivery")
    return delivery.id


def overdue(session: Session, now: datetime, stale: datetime) -> list[str]:
    """Pending deliveries due before `stale` whose last message is older than `stale`: marked sent now."""
    ids = list(
        session.execute(
            select(WebhookDelivery.id).where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at < stale,
                or_(WebhookDelivery.sent_at.is_(None), WebhookDelivery.sent_at < stale),
            )
        ).scalars()
    )
    if ids:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(sent_at=now))
    return ids


def claim(
    session: Session, delivery_id: str, settings: Settings, now: datetime | None = None
) -> Claim | None:
    """Take the next attempt of a pending, due delivery. None: delivered, given up, not due or taken."""
    now = now or utcnow()
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.status != PENDING or row.next_attempt_at > now + EARLY_SLACK:
        return None
    attempt = row.attempts + 1
    # Until this attempt reports, none other starts: the row is due again only once it timed out.
    hold = settings.webhook_timeout_seconds + backoff_seconds(attempt, settings.webhook_backoff_seconds)
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.attempts == row.attempts,
        )
        .values(attempts=attempt, next_attempt_at=now + timedelta(seconds=hold))
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Claim(
        delivery_id=delivery_id,
        job_id=row.job_id,
        tenant_id=row.tenant_id,
        url=row.url,
        event=row.event,
        attempt=attempt,
    )


def record_attempt(
    session: Session,
    taken: Claim,
    settings: Settings,
    status_code: int | None,
    error: str | None,
    *,
    final: bool = False,
) -> Outcome:
    """Store how an attempt went: delivered on a 2xx; otherwise retried later, or given up after the last
    attempt (or at once when `final`: the URL can never work)."""
    now = utcnow()
    values: dict[str, object] = {"last_status_code": status_code, "last_error": error}
    if status_code is not None and 200 <= status_code < 300:
        outcome = Outcome(DELIVERED, None)
    elif final or taken.attempt >= settings.webhook_max_attempts:
        outcome = Outcome(FAILED, None)
    else:
        delay = backoff_seconds(taken.attempt, settings.webhook_backoff_seconds)
        outcome = Outcome(PENDING, delay)
        values.update(next_attempt_at=now + timedelta(seconds=delay), sent_at=now)
    values["status"] = outcome.status
    if outcome.status != PENDING:
        values["finished_at"] = now
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == taken.delivery_id,
            WebhookDelivery.attempts == taken.attempt,
            WebhookDelivery.status == PENDING,
        )
        .values(**values)
    )
    return outcome
