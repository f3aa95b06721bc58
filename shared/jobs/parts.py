"""A part's lease: claim, heartbeat (progress), complete, fail or release; the fan-in to its job.

The lease is a fencing token that grows on every claim: every write of an attempt names its token, so a
worker that lost its lease can no longer write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from inferq.shared.jobs import lifecycle
from inferq.shared.jobs.cas import applied
from inferq.shared.jobs.events import record_event
from inferq.shared.models import Job, JobPart, utcnow
from inferq.shared.states import WORKING, JobStatus, PartStatus


@dataclass(frozen=True)
class Lease:
    part_id: str
    job_id: str
    token: int
    attempt: int


@dataclass(frozen=True)
class FanIn:
    """What completing a part did to its job."""

    job_status: JobStatus
    parts_done: int
    parts_total: int
    finalize: bool  # this transaction moved the job to finalizing: send the finalize message


def held(lease: Lease) -> ColumnElement[bool]:
    """The part row while `lease` still holds it: running, under the lease's token."""
    return and_(
        JobPart.id == lease.part_id,
        JobPart.lease_token == lease.token,
        JobPart.status == PartStatus.RUNNING,
    )


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
    if job_status not in WORKING:
        return None
    # Read before the UPDATE: the ORM synchronizes `part` with the new values when it runs.
    seen_token, seen_attempts = part.lease_token, part.attempts
    seen = (part.reported_completed, part.reported_failed)
    claimable = or_(
        JobPart.status == PartStatus.QUEUED,
        and_(JobPart.status == PartStatus.RUNNING, JobPart.lease_expires_at < now),
    )
    claimed = session.execute(
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
            status=PartStatus.RUNNING,
            lease_token=JobPart.lease_token + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=JobPart.attempts + 1,
            started_at=now,
            reported_completed=0,  # this attempt reports from nothing (`_report`)
            reported_failed=0,
        )
    )
    if not applied(claimed):
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
        select(JobPart.reported_completed, JobPart.reported_failed).where(held(lease)).with_for_update()
    ).one_or_none()
    if part is None:
        return False
    add_c = max(0, completed - part.reported_completed)
    add_f = max(0, failed - part.reported_failed)
    reported = session.execute(
        update(JobPart)
        .where(held(lease))
        .values(
            reported_completed=part.reported_completed + add_c,
            reported_failed=part.reported_failed + add_f,
            **values,
        )
    )
    if not applied(reported):
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
            lifecycle.transition(
                session, job_id, JobStatus.FINALIZING, sources=frozenset({JobStatus.RUNNING})
            )
            is not None
        )
        if finalize:
            lifecycle.mark_sent(session, job_id)
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
            "status": PartStatus.DONE,
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
            "status": PartStatus.FAILED,
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
    # Locked, so the heartbeat thread of this lease cannot add to the counts taken back here.
    part = session.execute(
        select(JobPart.reported_completed, JobPart.reported_failed).where(held(lease)).with_for_update()
    ).one_or_none()
    if part is None:
        return False
    values: dict[str, Any] = {
        "status": PartStatus.QUEUED,
        "lease_expires_at": None,
        "lease_owner": None,
        "sent_at": utcnow(),
        "reported_completed": 0,
        "reported_failed": 0,
    }
    if not count_attempt:
        values["attempts"] = JobPart.attempts - 1
    session.execute(update(JobPart).where(held(lease)).values(**values))
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
                JobPart.status == PartStatus.QUEUED,
                and_(JobPart.status == PartStatus.RUNNING, JobPart.lease_expires_at < now),
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
            status=PartStatus.SKIPPED,
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
                JobPart.status == PartStatus.RUNNING,
                JobPart.lease_expires_at > now,
            )
        ).scalar_one()
    )
