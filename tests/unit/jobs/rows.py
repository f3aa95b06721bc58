"""Rows for the tests of `shared.jobs`: a tenant's job, its plan, claims, and what the rows say."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from inferq.shared import jobs
from inferq.shared.ids import new_id
from inferq.shared.jobs import Lease, PartSpec
from inferq.shared.models import Job, JobEvent, JobPart, Tenant, utcnow

LEASE_SECONDS = 60


def new_job(session: Session) -> str:
    tenant = Tenant(id=new_id("tenant"), name=f"t-{new_id('x')}", created_at=utcnow())
    session.add(tenant)
    session.flush()
    job = jobs.create(
        session,
        Job(id=new_id("job"), tenant_id=tenant.id, type="predict", task="embedding", model="minilm-l6:1"),
    )
    session.commit()
    return job.id


def status_of(session: Session, job_id: str) -> str:
    return session.execute(select(Job.status).where(Job.id == job_id)).scalar_one()


def events_of(session: Session, job_id: str) -> int:
    return session.execute(
        select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
    ).scalar_one()


def progress_of(session: Session, job_id: str) -> tuple[int, int]:
    row = session.execute(select(Job.completed, Job.failed).where(Job.id == job_id)).one()
    return int(row.completed), int(row.failed)


def plan(session: Session, job_id: str, parts: int = 1, records: int = 10) -> list[str]:
    specs = [PartSpec(i, i * 100, (i + 1) * 100, 1 + i * records, i * records, records) for i in range(parts)]
    assert jobs.set_plan(session, job_id, specs, parts * records)
    session.commit()
    return list(
        session.execute(select(JobPart.id).where(JobPart.job_id == job_id).order_by(JobPart.index)).scalars()
    )


def claim(session: Session, part_id: str, owner: str) -> Lease | None:
    lease = jobs.claim_part(session, part_id, owner, LEASE_SECONDS)
    session.commit()
    return lease


def expire_lease(session: Session, part_id: str) -> None:
    """What time does to a dead worker's lease."""
    session.execute(
        update(JobPart).where(JobPart.id == part_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
