"""A job's plan: the slices of its input file (`PartSpec`), written once as its `job_parts` rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from inferq.shared.ids import new_id
from inferq.shared.jobs import lifecycle
from inferq.shared.jobs.cas import applied
from inferq.shared.jobs.events import record_event
from inferq.shared.models import Job, JobPart, utcnow
from inferq.shared.states import WORKING, JobStatus, PartStatus


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


def new_part(job_id: str, spec: PartSpec, now: datetime) -> JobPart:
    """The queued `job_parts` row of a planned slice (every planner builds its parts here)."""
    return JobPart(
        id=new_id("part"),
        job_id=job_id,
        index=spec.index,
        byte_start=spec.byte_start,
        byte_end=spec.byte_end,
        first_line=spec.first_line,
        first_record=spec.first_record,
        records=spec.records,
        duplicates=list(spec.duplicates) or None,
        status=PartStatus.QUEUED,
        sent_at=now,
    )


def set_plan(session: Session, job_id: str, specs: list[PartSpec], total: int) -> bool:
    """Write the part rows once; a second planner (duplicate message) finds parts_total set and stops."""
    planned = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.parts_total.is_(None),
            Job.status.in_(sorted(WORKING)),
        )
        .values(parts_total=len(specs), total=total, updated_at=utcnow())
    )
    if not applied(planned):
        return False
    now = utcnow()
    session.add_all(new_part(job_id, spec, now) for spec in specs)
    repeated = sum(len(spec.duplicates) for spec in specs)
    record_event(
        session,
        job_id,
        "planned",
        f"{len(specs)} parts, {total} records"
        + (f"; {repeated} repeat an earlier record's id (duplicate_id errors)" if repeated else ""),
        {"parts": len(specs), "total": total, **({"duplicate_ids": repeated} if repeated else {})},
    )
    lifecycle.transition(session, job_id, JobStatus.RUNNING, sources=frozenset({JobStatus.QUEUED}))
    return True
