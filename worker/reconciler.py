"""Reconcile: re-send every message SQL says is owed, and expire jobs past their window.

Every worker's main process runs it on a timer, one run at a time across the deployment
(worker/reconcile_timer.py); beat, when there is one, is just another caller. The broker may lose
messages (Redis flushed or restarted) or hold them for a dead worker until its visibility timeout; the
rows never do. Duplicates are harmless: every task re-checks its row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from inferq.shared import jobs, queue, webhooks
from inferq.shared.db import session_scope
from inferq.shared.models import Job, JobPart, utcnow
from inferq.shared.settings import Settings
from inferq.shared.states import LIVE, TERMINAL, WORKING, JobStatus, PartStatus

log = logging.getLogger(__name__)

CONTROL_RESEND_SECONDS = 60


@dataclass
class ReconcileReport:
    plans: int = 0
    parts: int = 0
    finalizes: int = 0
    expired: int = 0
    webhooks: int = 0
    settled: int = 0  # jobs that waited for a training job which had already ended

    def total(self) -> int:
        return self.plans + self.parts + self.finalizes + self.expired + self.webhooks + self.settled


def reconcile(settings: Settings, *, resend_after: int | None = None) -> ReconcileReport:
    report = ReconcileReport()
    now = utcnow()
    stale = now - timedelta(seconds=settings.resend_after_seconds if resend_after is None else resend_after)
    control_stale = now - timedelta(
        seconds=min(CONTROL_RESEND_SECONDS, settings.resend_after_seconds)
        if resend_after is None
        else resend_after
    )
    working = sorted(WORKING)

    with session_scope(settings) as session:
        # Jobs past their completion window stop like a cancel and end `expired`.
        overdue = (
            session.execute(
                select(Job.id).where(
                    Job.status.in_(sorted(LIVE - {JobStatus.CANCELLING})),
                    Job.expires_at.is_not(None),
                    Job.expires_at < now,
                )
            )
            .scalars()
            .all()
        )
        for job_id in overdue:
            if jobs.transition(
                session,
                job_id,
                JobStatus.CANCELLING,
                message="completion window passed",
                error_code="expired",
                error_message="the job did not finish within its window",
            ):
                jobs.mark_sent(session, job_id)
                report.expired += 1
    for job_id in overdue:
        queue.try_send(queue.TASK_FINALIZE, [job_id], settings=settings)

    with session_scope(settings) as session:
        # Settled as its training job's end would have (released ones are planned after this commit).
        for training_job_id in _ended_trainings(session):
            report.settled += len(jobs.settle_waiting(session, training_job_id))

    with session_scope(settings) as session:
        plans = (
            session.execute(
                select(Job.id).where(
                    Job.status.in_(working),
                    Job.parts_total.is_(None),
                    Job.waits_for_job_id.is_(None),  # a job waiting for training is planned when it ends
                    or_(Job.sent_at.is_(None), Job.sent_at < control_stale),
                )
            )
            .scalars()
            .all()
        )
        finals = (
            session.execute(
                select(Job.id).where(
                    Job.status.in_([JobStatus.FINALIZING, JobStatus.CANCELLING]),
                    or_(Job.sent_at.is_(None), Job.sent_at < control_stale),
                )
            )
            .scalars()
            .all()
        )
        part_rows = (
            session.execute(
                select(JobPart.id, Job.type)
                .join(Job, Job.id == JobPart.job_id)
                .where(
                    Job.status.in_(working),
                    or_(
                        and_(
                            JobPart.status == PartStatus.QUEUED,
                            or_(JobPart.sent_at.is_(None), JobPart.sent_at < stale),
                        ),
                        and_(
                            JobPart.status == PartStatus.RUNNING,
                            JobPart.lease_expires_at < now,
                            or_(
                                JobPart.sent_at.is_(None),
                                JobPart.sent_at < now - timedelta(seconds=settings.lease_seconds),
                            ),
                        ),
                    ),
                )
                .order_by(JobPart.job_id, JobPart.index)
            )
            .tuples()
            .all()
        )
        parts = [part_id for part_id, _ in part_rows]
        deliveries = webhooks.overdue(session, now, control_stale)
        for ids, model in ((plans, Job), (finals, Job)):
            if ids:
                session.execute(update(model).where(model.id.in_(ids)).values(sent_at=now))
        if parts:
            session.execute(update(JobPart).where(JobPart.id.in_(parts)).values(sent_at=now))

    for job_id in plans:
        report.plans += queue.try_send(queue.TASK_PLAN, [job_id], settings=settings)
    for job_id in finals:
        report.finalizes += queue.try_send(queue.TASK_FINALIZE, [job_id], settings=settings)
    for part_id, job_type in part_rows:
        report.parts += queue.try_send(queue.part_task(job_type), [part_id], settings=settings)
    for delivery_id in deliveries:
        report.webhooks += queue.try_send(queue.TASK_WEBHOOK, [delivery_id], settings=settings)
    if report.total():
        log.info(
            "reconciler re-sent %d plans, %d parts, %d finalizes, %d webhooks; expired %d jobs; "
            "settled %d jobs waiting for ended training",
            report.plans,
            report.parts,
            report.finalizes,
            report.webhooks,
            report.expired,
            report.settled,
        )
    return report


def _ended_trainings(session: Session) -> list[str]:
    """Training jobs that have ended (or are gone) while jobs still wait for them."""
    training = aliased(Job)
    ids = (
        session.execute(
            select(Job.waits_for_job_id)
            .distinct()
            .outerjoin(training, training.id == Job.waits_for_job_id)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.waits_for_job_id.is_not(None),
                or_(training.id.is_(None), training.status.in_(sorted(TERMINAL))),
            )
        )
        .scalars()
        .all()
    )
    return [job_id for job_id in ids if job_id is not None]
