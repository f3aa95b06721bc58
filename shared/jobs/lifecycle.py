"""A job's state: created, moved by compare-and-set `transition`, cancelled, failed, deleted once ended."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from inferq.shared import webhooks
from inferq.shared.job_objects import timestamp
from inferq.shared.jobs import training_waits
from inferq.shared.jobs.cas import applied
from inferq.shared.jobs.events import record_event
from inferq.shared.models import Job, JobEvent, JobPart, WebhookDelivery, utcnow
from inferq.shared.states import TERMINAL, WORKING, JobStatus, sources_of

log = logging.getLogger(__name__)


def create(session: Session, job: Job) -> Job:
    job.status = JobStatus.QUEUED
    now = utcnow()
    job.created_at = now
    job.updated_at = now
    session.add(job)
    session.flush()
    # Retention (shared.retention): when the job's objects and rows are deleted; null = kept until deleted.
    retention = {"delete_after": timestamp(job.delete_after)}
    record_event(session, job.id, "state", "job created", retention, to_status=JobStatus.QUEUED)
    return job


def transition(
    session: Session,
    job_id: str,
    to: JobStatus,
    *,
    sources: frozenset[JobStatus] | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> JobStatus | None:
    """Move a job to `to` if it is in one of `sources` (default: every state allowed to reach `to`).

    Returns the state it left, or None when the compare-and-set found it elsewhere.
    """
    allowed = sources_of(to) if sources is None else sources & sources_of(to)
    current = session.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    if current is None or current not in allowed:
        return None
    now = utcnow()
    values: dict[str, Any] = {"status": to, "updated_at": now, **fields}
    if to is JobStatus.RUNNING and "started_at" not in fields:
        values["started_at"] = now
    if to in TERMINAL:
        values["finished_at"] = now
    moved = session.execute(update(Job).where(Job.id == job_id, Job.status == current).values(**values))
    if not applied(moved):
        return None
    record_event(session, job_id, "state", message, data, from_status=current, to_status=to)
    if to in TERMINAL:  # the job's webhook: an outbox row now, the message once this transaction commits
        webhooks.on_terminal(session, job_id, to)
        training_waits.settle_waiting(session, job_id)  # jobs whose model is `train:<job_id>`
    return current


def mark_sent(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(sent_at=utcnow()))


def request_cancel(session: Session, job_id: str) -> JobStatus | None:
    """Cancel: the job goes to `cancelling`; the finalizer turns it into `cancelled`."""
    left = transition(session, job_id, JobStatus.CANCELLING, message="cancel requested")
    if left is not None:
        mark_sent(session, job_id)
    return left


def fail_job(session: Session, job_id: str, code: str, message: str) -> bool:
    left = transition(
        session,
        job_id,
        JobStatus.FAILED,
        message=message,
        data={"code": code},
        error_code=code,
        error_message=message,
    )
    if left is not None:
        log.warning("job %s failed: %s (%s)", job_id, message, code)
    return left is not None


def is_cancelled(session: Session, job_id: str) -> bool:
    status = session.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    return status is None or status not in WORKING


def delete_job(session: Session, job_id: str) -> bool:
    """Remove an ended job's rows: its events, parts, webhook deliveries and the job row itself.

    Not a state change (terminal states never change): the caller (shared.retention) has deleted its
    objects and result files first. False, with nothing deleted, unless the job exists and has ended.
    """
    status = session.execute(
        select(Job.status).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if status is None or status not in TERMINAL:
        return False
    session.execute(delete(JobEvent).where(JobEvent.job_id == job_id))
    session.execute(delete(JobPart).where(JobPart.job_id == job_id))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
    return applied(session.execute(delete(Job).where(Job.id == job_id, Job.status == status)))
