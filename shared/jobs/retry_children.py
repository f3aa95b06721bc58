"""Retry children (`POST /v1/jobs/{id}/retry`): the child is created queued without an input file; its
planner builds the input from the parent (worker.retry_input) and attaches it here."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from inferq.shared.jobs.cas import applied
from inferq.shared.jobs.events import record_event
from inferq.shared.models import Job, utcnow
from inferq.shared.states import WORKING


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
    attached = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.input_file_id.is_(None),
            Job.status.in_(sorted(WORKING)),
        )
        .values(input_file_id=file_id, total=records, updated_at=utcnow())
    )
    if not applied(attached):
        return False
    record_event(
        session,
        job_id,
        "retry_input",
        message,
        {"records": records, "unretryable": unretryable, "input_file": file_id},
    )
    return True
