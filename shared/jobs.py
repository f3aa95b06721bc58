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

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from shared import webhooks
from shared.ids import new_id
from shared.models import Job, JobEvent, JobPart, utcnow
from shared.states import TERMINAL, WORKING, JobStatus, PartStatus, sources_of

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
    record_event(session, job.id, "state", "job created", to_status=JobStatus.QUEUED.value)
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
                status=PartStatus.QUEUED.value,
                sent_at=now,
            )
        )
    record_event(
        session,
        job_id,
        "planned",
        f"{len(specs)} parts, {total} records",
        {"parts": len(specs), "total": total},
    )
    transition(session, job_id, JobStatus.RUNNING, sources=frozenset({JobStatus.QUEUED}))
    return True


def claim_part(session: Session, part_id: str, owner: str, lease_seconds: int) -> Lease | None:
    """Take the lease on a part: it must be queued, or running under a lease that has lapsed.

    The fencing token grows on every claim, so a worker that lost its lease can no longer write.
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
    claimable = or_(
        JobPart.status == PartStatus.QUEUED.value,
        and_(JobPart.status == PartStatus.RUNNING.value, JobPart.lease_expires_at < now),
    )
    result = session.execute(
        update(JobPart)
        .where(JobPart.id == part_id, JobPart.lease_token == seen_token, claimable)
        .values(
            status=PartStatus.RUNNING.value,
            lease_token=JobPart.lease_token + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=JobPart.attempts + 1,
            started_at=now,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
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
        {"part": part.index, "worker": owner, "attempt": attempt},
    )
    return Lease(part_id=part_id, job_id=part.job_id, token=token, attempt=attempt)


def _report(session: Session, lease: Lease, completed: int, failed: int, values: dict[str, Any]) -> bool:
    """Under the lease: store part values and add the growth of its counts to the job's progress."""
    part = session.execute(
        select(JobPart.reported_completed, JobPart.reported_failed).where(
            JobPart.id == lease.part_id, JobPart.lease_token == lease.token
        )
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
    values: dict[str, Any] = {
        "status": PartStatus.QUEUED.value,
        "lease_expires_at": None,
        "lease_owner": None,
        "sent_at": utcnow(),
    }
    if not count_attempt:
        values["attempts"] = JobPart.attempts - 1
    result = session.execute(
        update(JobPart)
        .where(
            JobPart.id == lease.part_id,
            JobPart.lease_token == lease.token,
            JobPart.status == PartStatus.RUNNING.value,
        )
        .values(**values)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        record_event(session, lease.job_id, "part_released", reason, {"part_id": lease.part_id})
        return True
    return False


def skip_unstarted_parts(session: Session, job_id: str) -> int:
    """A stopped job's parts that will not run: queued ones, and running ones whose lease lapsed.

    A lapsed lease belongs to a worker that died or froze; skipping its part (not leaving it `running`)
    also fences that worker out: a part that is no longer `running` takes no heartbeat and no commit.
    """
    now = utcnow()
    result = session.execute(
        update(JobPart)
        .where(
            JobPart.job_id == job_id,
            or_(
                JobPart.status == PartStatus.QUEUED.value,
                and_(JobPart.status == PartStatus.RUNNING.value, JobPart.lease_expires_at < now),
            ),
        )
        .values(status=PartStatus.SKIPPED.value, finished_at=now, lease_expires_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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


def set_final_metrics(session: Session, job_id: str, metrics: dict[str, Any]) -> None:
    """The finalizer's metrics of an evaluate job, set while it is finalizing (before it succeeds)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.FINALIZING.value)
        .values(metrics=metrics, updated_at=utcnow())
    )
