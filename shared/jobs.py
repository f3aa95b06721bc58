"""The only module that changes job and part state.

Every change is a compare-and-set UPDATE (it only applies if the row is still in the state the caller
saw) and every job state change writes a `job_events` row in the same transaction. Callers own the
transaction (`shared.db.session_scope`) and send broker messages only after it commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from inferq.shared import registry, training_waits, webhooks
from inferq.shared.errors import InferqError, NotFound
from inferq.shared.ids import new_id
from inferq.shared.job_objects import timestamp
from inferq.shared.models import Job, JobEvent, JobPart, ModelVersion, WebhookDelivery, utcnow
from inferq.shared.states import TERMINAL, WORKING, JobStatus, PartStatus, sources_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartSpec:
    """One slice of the input file: planned by worker.planner, stored as a job_parts row."""

    index: int
    byte_start: int
    byte_end: int
    first_line: int
    first_record: int
    records: int
    duplicates: tuple[int, ...] = ()  # file indexes of its records whose id came earlier in the file


@dataclass(frozen=True)
class Lease:
    part_id: str
    job_id: str
    token: int
    attempt: int


@dataclass(frozen=True)
class FanIn:
    """What completing a part did to its job."""

    job_status: str
    parts_done: int
    parts_total: int
    finalize: bool  # this transaction moved the job to finalizing: send the finalize message


def record_event(
    session: Session,
    job_id: str,
    kind: str,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
) -> None:
    session.add(
        JobEvent(
            job_id=job_id,
            kind=kind,
            message=message,
            data=data or {},
            from_status=from_status,
            to_status=to_status,
            created_at=utcnow(),
        )
    )


def create(session: Session, job: Job) -> Job:
    job.status = JobStatus.QUEUED.value
    now = utcnow()
    job.created_at = now
    job.updated_at = now
    session.add(job)
    session.flush()
    # Retention (shared.retention): when the job's objects and rows are deleted; null = kept until deleted.
    retention = {"delete_after": timestamp(job.delete_after)}
    record_event(session, job.id, "state", "job created", retention, to_status=JobStatus.QUEUED.value)
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
) -> str | None:
    """Move a job to `to` if it is in one of `sources` (default: every state allowed to reach `to`).

    Returns the state it left, or None when the compare-and-set found it elsewhere.
    """
    allowed = sources_of(to) if sources is None else sources & sources_of(to)
    current = session.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    if current is None or JobStatus(current) not in allowed:
        return None
    now = utcnow()
    values: dict[str, Any] = {"status": to.value, "updated_at": now, **fields}
    if to is JobStatus.RUNNING and "started_at" not in fields:
        values["started_at"] = now
    if to in TERMINAL:
        values["finished_at"] = now
    result = session.execute(update(Job).where(Job.id == job_id, Job.status == current).values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    record_event(session, job_id, "state", message, data, from_status=current, to_status=to.value)
    if to in TERMINAL:  # the job's webhook: an outbox row now, the message once this transaction commits
        webhooks.on_terminal(session, job_id, to.value)
        settle_waiting(session, job_id)  # jobs whose model is `train:<job_id>`
    return current


def mark_sent(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(sent_at=utcnow()))


def set_plan(session: Session, job_id: str, specs: list[PartSpec], total: int) -> bool:
    """Write the part rows once; a second planner (duplicate message) finds parts_total set and stops."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.parts_total.is_(None),
            Job.status.in_([s.value for s in WORKING]),
        )
        .values(parts_total=len(specs), total=total, updated_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    now = utcnow()
    for spec in specs:
        session.add(
            JobPart(
                id=new_id("part"),
                job_id=job_id,
                index=spec.index,
                byte_start=spec.byte_start,
                byte_end=spec.byte_end,
                first_line=spec.first_line,
                first_record=spec.first_record,
                records=spec.records,
                duplicates=list(spec.duplicates) or None,
                status=PartStatus.QUEUED.value,
                sent_at=now,
            )
        )
    repeated = sum(len(spec.duplicates) for spec in specs)
    record_event(
        session,
        job_id,
        "planned",
        f"{len(specs)} parts, {total} records"
        + (f"; {repeated} repeat an earlier record's id (duplicate_id errors)" if repeated else ""),
        {"parts": len(specs), "total": total, **({"duplicate_ids": repeated} if repeated else {})},
    )
    transition(session, job_id, JobStatus.RUNNING, sources=frozenset({JobStatus.QUEUED}))
    return True


def claim_part(
    session: Session,
    part_id: str,
    owner: str,
    lease_seconds: int,
    *,
    scheduled: dict[str, Any] | None = None,
) -> Lease | None:
    """Take the lease on a part: it must be queued, or running under a lease that has lapsed.

    The fencing token grows on every claim, so a worker that lost its lease can no longer write.
    `scheduled`: why fair share ran this part instead of the one its message named (`claim_fair_part`),
    added to the part_started event.
    """
    now = utcnow()
    part = session.get(JobPart, part_id)
    if part is None:
        return None
    job_status = session.execute(select(Job.status).where(Job.id == part.job_id)).scalar_one()
    if JobStatus(job_status) not in WORKING:
        return None
    # Read before the UPDATE: the ORM synchronizes `part` with the new values when it runs.
    seen_token, seen_attempts = part.lease_token, part.attempts
    seen = (part.reported_completed, part.reported_failed)
    claimable = or_(
        JobPart.status == PartStatus.QUEUED.value,
        and_(JobPart.status == PartStatus.RUNNING.value, JobPart.lease_expires_at < now),
    )
    result = session.execute(
        update(JobPart)
        .where(
            JobPart.id == part_id,
            JobPart.lease_token == seen_token,
            # a late heartbeat of the lapsed lease changes these: the claim then loses, as to a claim
            JobPart.reported_completed == seen[0],
            JobPart.reported_failed == seen[1],
            claimable,
        )
        .values(
            status=PartStatus.RUNNING.value,
            lease_token=JobPart.lease_token + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=JobPart.attempts + 1,
            started_at=now,
            reported_completed=0,  # this attempt reports from nothing (`_report`)
            reported_failed=0,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    _take_back(session, part.job_id, *seen)  # a lapsed attempt's progress: its work is lost
    token = seen_token + 1
    attempt = seen_attempts + 1
    if attempt > 1:
        record_event(
            session,
            part.job_id,
            "retry",
            f"part {part.index} attempt {attempt} on {owner}",
            {"part": part.index, "attempt": attempt, "worker": owner},
        )
    record_event(
        session,
        part.job_id,
        "part_started",
        f"part {part.index} started on {owner}",
        {"part": part.index, "worker": owner, "attempt": attempt, **(scheduled or {})},
    )
    return Lease(part_id=part_id, job_id=part.job_id, token=token, attempt=attempt)


def _report(session: Session, lease: Lease, completed: int, failed: int, values: dict[str, Any]) -> bool:
    """Under the lease: store part values and add the growth of its counts to the job's progress.

    The part row is locked while its counts are read, so a concurrent release (`release_part`) either
    takes back what this adds or finds this report already refused.
    """
    part = session.execute(
        select(JobPart.reported_completed, JobPart.reported_failed)
        .where(
            JobPart.id == lease.part_id,
            JobPart.lease_token == lease.token,
            JobPart.status == PartStatus.RUNNING.value,
        )
        .with_for_update()
    ).one_or_none()
    if part is None:
        return False
    add_c = max(0, completed - part.reported_completed)
    add_f = max(0, failed - part.reported_failed)
    result = session.execute(
        update(JobPart)
        .where(
            JobPart.id == lease.part_id,
            JobPart.lease_token == lease.token,
            JobPart.status == PartStatus.RUNNING.value,
        )
        .values(
            reported_completed=part.reported_completed + add_c,
            reported_failed=part.reported_failed + add_f,
            **values,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if add_c or add_f:
        session.execute(
            update(Job)
            .where(Job.id == lease.job_id)
            .values(completed=Job.completed + add_c, failed=Job.failed + add_f, updated_at=utcnow())
        )
    return True


def _take_back(session: Session, job_id: str, completed: int, failed: int) -> None:
    """Remove an attempt's published progress from its job: the attempt ended without a result (released,
    its lease lapsed, or skipped), so its records are in no file yet and count again when they run."""
    if completed or failed:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(completed=Job.completed - completed, failed=Job.failed - failed, updated_at=utcnow())
        )


def heartbeat(session: Session, lease: Lease, lease_seconds: int, completed: int, failed: int) -> bool:
    """Extend the lease and publish progress. False: the lease is lost, stop working on the part."""
    return _report(
        session,
        lease,
        completed,
        failed,
        {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)},
    )


def _fan_in(session: Session, job_id: str) -> FanIn:
    row = session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(parts_done=Job.parts_done + 1, updated_at=utcnow())
        .returning(Job.parts_done, Job.parts_total, Job.status)
    ).one()
    finalize = False
    if row.parts_total is not None and row.parts_done >= row.parts_total:
        finalize = (
            transition(session, job_id, JobStatus.FINALIZING, sources=frozenset({JobStatus.RUNNING}))
            is not None
        )
        if finalize:
            mark_sent(session, job_id)
    return FanIn(
        job_status=row.status, parts_done=row.parts_done, parts_total=row.parts_total or 0, finalize=finalize
    )


def complete_part(
    session: Session,
    lease: Lease,
    completed: int,
    failed: int,
    output_key: str,
    error_key: str,
    stats: dict[str, Any] | None = None,
) -> FanIn | None:
    """Mark the part done if the lease still holds, and add its counts to the job. None: lease lost."""
    now = utcnow()
    ok = _report(
        session,
        lease,
        completed,
        failed,
        {
            "status": PartStatus.DONE.value,
            "completed": completed,
            "failed": failed,
            "output_key": output_key,
            "error_key": error_key,
            "stats": stats,
            "finished_at": now,
            "lease_expires_at": None,
        },
    )
    if not ok:
        return None
    idx = session.execute(select(JobPart.index).where(JobPart.id == lease.part_id)).scalar_one()
    record_event(session, lease.job_id, "part_done", f"part {idx} done", {"part": idx, **(stats or {})})
    return _fan_in(session, lease.job_id)


def fail_part(
    session: Session, lease: Lease, code: str, message: str, error_key: str, output_key: str
) -> FanIn | None:
    """Give up on a part (it killed its worker too often): its records count as failed."""
    part = session.get(JobPart, lease.part_id)
    if part is None:
        return None
    ok = _report(
        session,
        lease,
        part.reported_completed,
        part.records - part.reported_completed,
        {
            "status": PartStatus.FAILED.value,
            "completed": 0,
            "failed": part.records,
            "output_key": output_key,
            "error_key": error_key,
            "finished_at": utcnow(),
            "lease_expires_at": None,
            "stats": {"error": {"code": code, "message": message}},
        },
    )
    if not ok:
        return None
    record_event(
        session,
        lease.job_id,
        "part_failed",
        f"part {part.index}: {message}",
        {"part": part.index, "code": code},
    )
    return _fan_in(session, lease.job_id)


def release_part(session: Session, lease: Lease, reason: str, *, count_attempt: bool = True) -> bool:
    """Hand a part back so another worker can take it at once.

    `count_attempt=False` when the attempt was stopped for a reason that is not the part's (the worker
    shutting down): it then does not count towards `max_part_attempts`.
    """
    held = and_(
        JobPart.id == lease.part_id,
        JobPart.lease_token == lease.token,
        JobPart.status == PartStatus.RUNNING.value,
    )
    # Locked, so the heartbeat thread of this lease cannot add to the counts taken back here.
    part = session.execute(
        select(JobPart.reported_completed, JobPart.reported_failed).where(held).with_for_update()
    ).one_or_none()
    if part is None:
        return False
    values: dict[str, Any] = {
        "status": PartStatus.QUEUED.value,
        "lease_expires_at": None,
        "lease_owner": None,
        "sent_at": utcnow(),
        "reported_completed": 0,
        "reported_failed": 0,
    }
    if not count_attempt:
        values["attempts"] = JobPart.attempts - 1
    session.execute(update(JobPart).where(held).values(**values))
    _take_back(session, lease.job_id, part.reported_completed, part.reported_failed)
    record_event(session, lease.job_id, "part_released", reason, {"part_id": lease.part_id})
    return True


def skip_unstarted_parts(session: Session, job_id: str) -> int:
    """A stopped job's parts that will not run: queued ones, and running ones whose lease lapsed.

    A lapsed lease belongs to a worker that died or froze; skipping its part (not leaving it `running`)
    also fences that worker out: a part that is no longer `running` takes no heartbeat and no commit.
    The progress such a part published is taken back: none of its records is in the job's files.
    """
    now = utcnow()
    rows = session.execute(
        select(JobPart.id, JobPart.reported_completed, JobPart.reported_failed)
        .where(
            JobPart.job_id == job_id,
            or_(
                JobPart.status == PartStatus.QUEUED.value,
                and_(JobPart.status == PartStatus.RUNNING.value, JobPart.lease_expires_at < now),
            ),
        )
        .with_for_update()
    ).all()
    if not rows:
        return 0
    session.execute(
        update(JobPart)
        .where(JobPart.id.in_([row.id for row in rows]))
        .values(
            status=PartStatus.SKIPPED.value,
            finished_at=now,
            lease_expires_at=None,
            reported_completed=0,
            reported_failed=0,
        )
    )
    _take_back(
        session,
        job_id,
        sum(row.reported_completed for row in rows),
        sum(row.reported_failed for row in rows),
    )
    return len(rows)


def running_parts(session: Session, job_id: str, now: datetime | None = None) -> int:
    """Parts whose lease still holds (a lapsed lease belongs to a dead worker)."""
    now = now or utcnow()
    return int(
        session.execute(
            select(func.count())
            .select_from(JobPart)
            .where(
                JobPart.job_id == job_id,
                JobPart.status == PartStatus.RUNNING.value,
                JobPart.lease_expires_at > now,
            )
        ).scalar_one()
    )


def request_cancel(session: Session, job_id: str) -> str | None:
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
    return status is None or JobStatus(status) not in WORKING


# ---------------------------------------------------------------------------------------------------------
# Training jobs: one part covers the training file and runs as one leased task on the training queue.


def plan_single_part(session: Session, job_id: str, spec: PartSpec, total: int) -> str:
    """Write the one part of a training job at submit (the job stays queued until a worker claims it)."""
    session.execute(
        update(Job).where(Job.id == job_id).values(parts_total=1, total=total, updated_at=utcnow())
    )
    part_id = new_id("part")
    session.add(
        JobPart(
            id=part_id,
            job_id=job_id,
            index=spec.index,
            byte_start=spec.byte_start,
            byte_end=spec.byte_end,
            first_line=spec.first_line,
            first_record=spec.first_record,
            records=spec.records,
            status=PartStatus.QUEUED.value,
            sent_at=utcnow(),
        )
    )
    session.flush()
    return part_id


def start_training(session: Session, lease: Lease) -> None:
    """The worker holding the lease began: queued → running (a resumed attempt finds it running)."""
    transition(session, lease.job_id, JobStatus.RUNNING, sources=frozenset({JobStatus.QUEUED}))


def set_metrics(session: Session, lease: Lease, metrics: dict[str, Any]) -> bool:
    """Publish a running job's metrics, only while the lease holds and the job still works."""
    holds = session.execute(
        select(JobPart.id).where(
            JobPart.id == lease.part_id,
            JobPart.lease_token == lease.token,
            JobPart.status == PartStatus.RUNNING.value,
        )
    ).scalar_one_or_none()
    if holds is None:
        return False
    result = session.execute(
        update(Job)
        .where(Job.id == lease.job_id, Job.status.in_([s.value for s in WORKING]))
        .values(metrics=metrics, updated_at=utcnow())
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def finish_training(
    session: Session,
    lease: Lease,
    *,
    completed: int,
    failed: int,
    output_key: str,
    error_key: str,
    result_model: str,
    metrics: dict[str, Any],
    stats: dict[str, Any] | None = None,
) -> FanIn | None:
    """Under the lease: record the trained model and final metrics and complete the part (→ finalizing).

    None when the lease was lost: the caller's transaction must roll back (the model row with it).
    """
    fan_in = complete_part(session, lease, completed, failed, output_key, error_key, stats)
    if fan_in is None:
        return None
    session.execute(
        update(Job)
        .where(Job.id == lease.job_id)
        .values(result_model=result_model, metrics=metrics, updated_at=utcnow())
    )
    record_event(
        session, lease.job_id, "model_registered", f"trained {result_model}", {"model": result_model}
    )
    return fan_in


# ---------------------------------------------------------------------------------------------------------
# Train then predict: a job whose model is `train:<job_id>` stays queued, unplanned, until that job ends
# (shared.training_waits).


def wait_for_training(session: Session, job_id: str, training_job_id: str) -> None:
    """A new job starts waiting for a training job that has not ended yet."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        .values(waits_for_job_id=training_job_id, updated_at=utcnow())
    )
    record_event(
        session,
        job_id,
        "waiting",
        f"waiting for training job {training_job_id}",
        {"training_job": training_job_id},
    )


def _training_cause(training_job_id: str, training: Any) -> str:
    """Why a training job gave no model, for the jobs that waited for it."""
    if training is None:
        return f"training job {training_job_id} no longer exists"
    status = JobStatus(training.status)
    if status is JobStatus.CANCELLED:
        return f"training job {training_job_id} was cancelled"
    cause = f": {training.error_message}" if training.error_message else ""
    return f"training job {training_job_id} {status.value}{cause}"


def settle_waiting(session: Session, training_job_id: str) -> list[str]:
    """Settle the jobs still waiting for a training job that has ended (or no longer exists).

    Succeeded: each waiting job gets the trained version as its model, stops waiting, and its plan
    message goes once this transaction commits. Any other end: each fails with `training_failed` and the
    training job's cause. Returns the ids of the jobs settled; nothing while the training job still runs.
    """
    waiting = list(
        session.execute(
            select(Job.id).where(
                Job.waits_for_job_id == training_job_id, Job.status == JobStatus.QUEUED.value
            )
        ).scalars()
    )
    if not waiting:
        return []
    training = session.execute(
        select(Job.status, Job.tenant_id, Job.task, Job.result_model, Job.error_message).where(
            Job.id == training_job_id
        )
    ).one_or_none()
    if training is not None and JobStatus(training.status) not in TERMINAL:
        return []
    code, cause = training_waits.TRAINING_FAILED, _training_cause(training_job_id, training)
    if training is not None and training.status == JobStatus.SUCCEEDED.value:
        try:
            model = _trained_version(session, training)
        except InferqError as e:
            code, cause = e.code, f"training job {training_job_id} succeeded, but {e.message}"
        else:
            return _release(session, training_job_id, waiting, model.ref, model.version_id)
    settled = []
    for job_id in waiting:
        left = transition(
            session,
            job_id,
            JobStatus.FAILED,
            sources=frozenset({JobStatus.QUEUED}),
            message=cause,
            data={"code": code, "training_job": training_job_id},
            error_code=code,
            error_message=cause,
        )
        if left is not None:
            settled.append(job_id)
    if settled:
        log.info("jobs %s failed: %s", settled, cause)
    return settled


def _trained_version(session: Session, training: Any) -> registry.ResolvedModel:
    """The version a succeeded training job registered, locked against a concurrent delete (which then
    sees the jobs that run on it)."""
    model = registry.resolve(session, training.tenant_id, training.result_model or "", training.task)
    status = session.execute(
        select(ModelVersion.status).where(ModelVersion.id == model.version_id).with_for_update()
    ).scalar_one_or_none()
    if status != "ready":
        raise NotFound(f"model {model.ref!r} does not exist", code="model_not_found")
    return model


def _release(
    session: Session, training_job_id: str, waiting: list[str], ref: str, version_id: str | None
) -> list[str]:
    """Point the waiting jobs at the trained version; their plan messages go after the commit."""
    now = utcnow()
    released = []
    for job_id in waiting:
        result = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.waits_for_job_id == training_job_id,
                Job.status == JobStatus.QUEUED.value,
            )
            .values(
                model=ref, model_version_id=version_id, waits_for_job_id=None, sent_at=now, updated_at=now
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        record_event(
            session,
            job_id,
            "training_done",
            f"training job {training_job_id} succeeded; running on {ref}",
            {"training_job": training_job_id, "model": ref},
        )
        released.append(job_id)
    training_waits.plan_after_commit(session, released)
    if released:
        log.info("jobs %s released: training job %s made %s", released, training_job_id, ref)
    return released


def delete_job(session: Session, job_id: str) -> bool:
    """Remove an ended job's rows: its events, parts, webhook deliveries and the job row itself.

    Not a state change (terminal states never change): the caller (shared.retention) has deleted its
    objects and result files first. False, with nothing deleted, unless the job exists and has ended.
    """
    status = session.execute(
        select(Job.status).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if status is None or JobStatus(status) not in TERMINAL:
        return False
    session.execute(delete(JobEvent).where(JobEvent.job_id == job_id))
    session.execute(delete(JobPart).where(JobPart.job_id == job_id))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
    result = session.execute(delete(Job).where(Job.id == job_id, Job.status == status))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------
# Retry children (`POST /v1/jobs/{id}/retry`): the child is created queued without an input file; its
# planner builds the input from the parent (worker.retry_input) and attaches it here.


def record_retry(session: Session, parent_id: str, child_id: str, only: str, records: int) -> None:
    """The events of a new retry child: `retried` on the parent, `retry_of` on the child. `records`: how
    many the child covers at most (its `retry_input` event says how many it runs)."""
    data = {"parent_job": parent_id, "child_job": child_id, "only": only, "records": records}
    record_event(
        session, parent_id, "retried", f"its {only} records ({records}) run again as job {child_id}", data
    )
    record_event(
        session, child_id, "retry_of", f"runs the {only} records ({records}) of job {parent_id} again", data
    )


def attach_retry_input(
    session: Session, job_id: str, file_id: str, records: int, unretryable: int, message: str
) -> bool:
    """Give a working retry child the input its planner built, once; False when another planner did first
    or the job stopped meanwhile."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.input_file_id.is_(None),
            Job.status.in_([s.value for s in WORKING]),
        )
        .values(input_file_id=file_id, total=records, updated_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_event(
        session,
        job_id,
        "retry_input",
        message,
        {"records": records, "unretryable": unretryable, "input_file": file_id},
    )
    return True


# ---------------------------------------------------------------------------------------------------------
# Fair share: a run_part message is permission to run one inference part; which part runs is decided here,
# so one tenant's big job cannot starve another tenant's small one, and priority orders a tenant's jobs.

TRAIN_JOB_TYPE = "train"  # its one part runs on the training queue (shared.queue.part_task), not here
FAIR_CANDIDATES = 4  # fairest parts tried (compare-and-set) before the message's own part


@dataclass(frozen=True)
class Candidate:
    """A part fair share may run next."""

    part_id: str
    job_id: str
    tenant_id: str
    priority: int
    created_at: datetime  # the job's


FAIR_CLAIM_ROUNDS = (
    8  # claim_fair_part: looks again this often after losing races (each loss is another worker's win)
)


def next_parts(session: Session, limit: int = FAIR_CANDIDATES) -> list[Candidate]:
    """The next fresh part (queued, never attempted) of up to `limit` inference jobs, fairest first.

    Tenants in turn: fewest parts running, then least recently served (the latest part start among its
    inference jobs that have not ended; never served comes first), then the one waiting longest. Within a
    tenant: the highest job priority, then the oldest job; within a job the lowest part index (results
    stream in input order). One query, a row per unfinished job, whose per-job lookups read job_parts by
    job_id (never the history of ended jobs).
    """
    parts = aliased(JobPart)
    of_job = parts.job_id == Job.id
    fresh = and_(of_job, parts.status == PartStatus.QUEUED.value, parts.attempts == 0)
    rows = session.execute(
        select(
            Job.id,
            Job.tenant_id,
            Job.priority,
            Job.created_at,
            Job.status,
            select(parts.id).where(fresh).order_by(parts.index).limit(1).scalar_subquery(),
            select(func.count()).where(of_job, parts.status == PartStatus.RUNNING.value).scalar_subquery(),
            select(func.max(parts.started_at)).where(of_job).scalar_subquery(),
        ).where(Job.type != TRAIN_JOB_TYPE, Job.status.in_([s.value for s in JobStatus if s not in TERMINAL]))
    ).tuples()
    shares: dict[str, _Share] = {}
    waiting: list[Candidate] = []
    for job_id, tenant_id, priority, created_at, status, first_fresh, running, started in rows:
        shares.setdefault(tenant_id, _Share(first_job=created_at)).add(int(running or 0), started, created_at)
        if first_fresh is not None and JobStatus(status) in WORKING:
            waiting.append(Candidate(first_fresh, job_id, tenant_id, priority, created_at))
    waiting.sort(key=lambda c: (shares[c.tenant_id].key(c.tenant_id), -c.priority, c.created_at, c.job_id))
    return waiting[:limit]


@dataclass
class _Share:
    """What a tenant is getting now: parts running, its latest part start, its oldest unfinished job."""

    first_job: datetime
    running: int = 0
    last_start: datetime | None = None

    def add(self, running: int, started: datetime | None, created_at: datetime) -> None:
        self.running += running
        if started is not None and (self.last_start is None or started > self.last_start):
            self.last_start = started
        self.first_job = min(self.first_job, created_at)

    def key(self, tenant_id: str) -> tuple[int, bool, datetime, datetime, str]:
        never = self.last_start is None
        return (self.running, not never, self.last_start or self.first_job, self.first_job, tenant_id)


def claim_fair_part(
    session: Session, hint_part_id: str, owner: str, lease_seconds: int, *, redelivered: bool = False
) -> Lease | None:
    """Claim the part a run_part message should run now; None: nothing for it to run.

    The message names a part (`hint_part_id`), but is permission to run one part: every part planned,
    released or re-sent has a message of its own, so messages never fall short of the waiting parts, and
    a part run for another part's message leaves its own message for the part that was passed over.
    - The named part was tried before (a retry after a failure, a lapsed lease): run it, as today (the
      retry keeps its backoff, a lost worker's part its redelivery; `next_parts` never offers it).
    - A broker's redelivered copy (`redelivered`) whose part runs under a live lease: nothing, a copy.
    - Otherwise the fairest fresh part (`next_parts`), the next one if another worker won the race,
      then the named part itself. A part run instead of the named one says why in its part_started event
      (`scheduled`), and the named part's job, held back, gets one `held_back` event the first time.
    """
    hint = session.get(JobPart, hint_part_id)
    hint_job = session.get(Job, hint.job_id) if hint is not None else None
    waiting: Job | None = None  # the named part's job, when that part could run now (held back if not)
    if hint is not None and hint_job is not None and JobStatus(hint_job.status) in WORKING:
        lapsed = hint.status == PartStatus.RUNNING.value and (
            hint.lease_expires_at is None or hint.lease_expires_at < utcnow()
        )
        retry = hint.status == PartStatus.QUEUED.value and hint.attempts > 0
        if hint_job.type == TRAIN_JOB_TYPE or lapsed or retry:
            return claim_part(session, hint_part_id, owner, lease_seconds)
        if redelivered and hint.status == PartStatus.RUNNING.value:
            return None
        if hint.status == PartStatus.QUEUED.value:
            waiting = hint_job
    # Another worker may win the race for a candidate (two idle workers take a job's first two messages
    # at once and both pick its first fresh part): look again, since next_parts offers one part a job and
    # the named part may be the very one just lost. Without this the message is spent on nothing and a
    # part is left without one until the reconciler re-sends it (INFERQ_RESEND_AFTER_SECONDS).
    lost: set[str] = set()
    for _ in range(FAIR_CLAIM_ROUNDS):
        candidates = [c for c in next_parts(session) if c.part_id not in lost]
        if not candidates:
            break
        for candidate in candidates:
            scheduled = None if candidate.part_id == hint_part_id else _scheduled(hint, waiting, candidate)
            lease = claim_part(session, candidate.part_id, owner, lease_seconds, scheduled=scheduled)
            if lease is not None:
                if waiting is not None and candidate.job_id != waiting.id:
                    _held_back(session, waiting, candidate)
                return lease
            lost.add(candidate.part_id)
    return claim_part(session, hint_part_id, owner, lease_seconds) if waiting is not None else None


def _scheduled(hint: JobPart | None, waiting: Job | None, candidate: Candidate) -> dict[str, Any]:
    """Why `candidate` runs for the message of `hint` (never another tenant's ids)."""
    if hint is None or waiting is None:
        return {"scheduled": "spare_message"}  # the named part had run already, or its job stopped
    if candidate.tenant_id != waiting.tenant_id:
        return {"scheduled": "fair_share"}
    if candidate.job_id == waiting.id:
        return {"scheduled": "input_order", "hint_part": hint.index}
    reason = "priority" if candidate.priority > waiting.priority else "job_order"
    return {"scheduled": reason, "hint_job": waiting.id, "hint_part": hint.index}


def _held_back(session: Session, job: Job, candidate: Candidate) -> None:
    """The first time a job's part waits while another job's part runs for its message: one event."""
    seen = session.execute(
        select(JobEvent.id).where(JobEvent.job_id == job.id, JobEvent.kind == "held_back").limit(1)
    ).first()
    if seen is not None:
        return
    if candidate.tenant_id != job.tenant_id:
        record_event(
            session,
            job.id,
            "held_back",
            "another tenant's job runs first (fair share); this job's parts run in turn",
            {"reason": "fair_share"},
        )
        return
    if candidate.priority > job.priority:
        reason, why = "priority", f"job {candidate.job_id} (priority {candidate.priority}) runs first"
    else:
        reason, why = "job_order", f"job {candidate.job_id}, submitted earlier, runs first"
    record_event(
        session,
        job.id,
        "held_back",
        why,
        {"reason": reason, "job": candidate.job_id, "priority": candidate.priority},
    )
