"""Training jobs: one part covers the training file and runs as one leased task on the training queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from inferq.shared.jobs import lifecycle
from inferq.shared.jobs.cas import applied
from inferq.shared.jobs.events import record_event
from inferq.shared.jobs.parts import FanIn, Lease, complete_part, held
from inferq.shared.jobs.plans import PartSpec, new_part
from inferq.shared.models import Job, JobPart, utcnow
from inferq.shared.states import WORKING, JobStatus


def plan_single_part(session: Session, job_id: str, spec: PartSpec, total: int) -> str:
    """Write the one part of a training job at submit (the job stays queued until a worker claims it)."""
    session.execute(
        update(Job).where(Job.id == job_id).values(parts_total=1, total=total, updated_at=utcnow())
    )
    part = new_part(job_id, spec, utcnow())
    session.add(part)
    session.flush()
    return part.id


def start_training(session: Session, lease: Lease) -> None:
    """The worker holding the lease began: queued → running (a resumed attempt finds it running)."""
    lifecycle.transition(session, lease.job_id, JobStatus.RUNNING, sources=frozenset({JobStatus.QUEUED}))


def set_metrics(session: Session, lease: Lease, metrics: dict[str, Any]) -> bool:
    """Publish a running job's metrics, only while the lease holds and the job still works."""
    holds = session.execute(select(JobPart.id).where(held(lease))).scalar_one_or_none()
    if holds is None:
        return False
    return applied(
        session.execute(
            update(Job)
            .where(Job.id == lease.job_id, Job.status.in_(sorted(WORKING)))
            .values(metrics=metrics, updated_at=utcnow())
        )
    )


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
