"""`shared.jobs.plans` on a real SQLite database migrated to head: a job is planned once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inferq.shared import jobs
from inferq.shared.jobs import PartSpec, new_part
from inferq.shared.models import JobPart, utcnow
from inferq.shared.states import PartStatus
from tests.unit.jobs.rows import new_job, plan, status_of


def test_a_second_plan_loses(session: Session) -> None:
    # given a planned job
    job_id = new_job(session)
    plan(session, job_id, parts=3)

    # when a duplicate planner writes its own plan
    second = jobs.set_plan(session, job_id, [PartSpec(0, 0, 10, 1, 0, 1)], 1)
    session.commit()

    # then it is refused and the first plan stands
    assert second is False
    count = session.execute(
        select(func.count()).select_from(JobPart).where(JobPart.job_id == job_id)
    ).scalar_one()
    assert count == 3
    assert status_of(session, job_id) == "running"


def test_a_planned_part_is_a_queued_row_of_its_slice() -> None:
    # given a slice of the input file with a record that repeats an earlier id
    spec = PartSpec(2, 200, 300, 21, 20, 10, duplicates=(23,))
    now = utcnow()

    # when its row is built
    part = new_part("job_1", spec, now)

    # then the row is the slice, queued and sent now, with its duplicates listed
    assert (part.job_id, part.index, part.byte_start, part.byte_end) == ("job_1", 2, 200, 300)
    assert (part.first_line, part.first_record, part.records) == (21, 20, 10)
    assert (part.status, part.sent_at, part.duplicates) == (PartStatus.QUEUED, now, [23])
    assert part.id.startswith("part")
    # and a slice without repeats stores none
    assert new_part("job_1", PartSpec(0, 0, 10, 1, 0, 1), now).duplicates is None
