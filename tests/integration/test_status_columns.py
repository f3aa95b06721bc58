"""Status and type columns round trip as enums, on Postgres and on SQLite: rows give `JobStatus`,
`PartStatus` and `JobType` members, and the database keeps their plain string values (no schema
change: the columns stay VARCHAR, see test_migrations)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from inferq.shared import jobs
from inferq.shared.db import get_engine, session_scope
from inferq.shared.ids import new_id
from inferq.shared.job_types import JobType
from inferq.shared.jobs import PartSpec
from inferq.shared.migrate import upgrade
from inferq.shared.models import Job, JobEvent, JobPart, Tenant, utcnow
from inferq.shared.settings import Settings
from inferq.shared.states import WORKING, JobStatus, PartStatus

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres", "sqlite"])
def settings(
    request: pytest.FixtureRequest, make_pg_database: Callable[[], str], tmp_path: Path
) -> Iterator[Settings]:
    env = {"INFERQ_DATA_DIR": str(tmp_path)}
    if request.param == "postgres":
        env["INFERQ_DATABASE_URL"] = make_pg_database()
    migrated = Settings.from_env(env)
    upgrade(migrated)
    yield migrated
    get_engine(migrated).dispose()


def planned_job(settings: Settings) -> str:
    """A predict job built with plain strings (as the API builds it), planned into one part."""
    with session_scope(settings) as session:
        tenant = Tenant(id=new_id("tenant"), name=f"t-{new_id('x')}", created_at=utcnow())
        session.add(tenant)
        session.flush()
        job = Job(id=new_id("job"), tenant_id=tenant.id, type="predict", task="embedding", model="m:1")
        jobs.create(session, job)
        assert jobs.set_plan(session, job.id, [PartSpec(0, 0, 10, 1, 0, 1)], 1)
        return job.id


def test_rows_give_members_and_the_database_keeps_the_values(settings: Settings) -> None:
    # given a job written with plain strings, then planned (queued → running)
    job_id = planned_job(settings)

    # when its rows are read back, as objects and as columns
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        assert job is not None
        part = session.execute(select(JobPart).where(JobPart.job_id == job_id)).scalar_one()
        status = session.execute(select(Job.status).where(Job.id == job_id)).scalar_one()
        moves = session.execute(
            select(JobEvent.from_status, JobEvent.to_status)
            .where(JobEvent.job_id == job_id, JobEvent.kind == "state")
            .order_by(JobEvent.id)
        ).all()
        stored = session.execute(
            text("SELECT j.type, j.status, p.status FROM jobs j JOIN job_parts p ON p.job_id = j.id")
        ).one()

    # then they are the enums' members
    assert job.type is JobType.PREDICT and job.status is JobStatus.RUNNING
    assert status is JobStatus.RUNNING
    assert part.status is PartStatus.QUEUED
    assert [tuple(m) for m in moves] == [(None, JobStatus.QUEUED), (JobStatus.QUEUED, JobStatus.RUNNING)]
    assert moves[1].to_status is JobStatus.RUNNING
    # and the columns hold the plain strings, exactly as before the enums
    assert tuple(stored) == ("predict", "running", "queued")
    assert all(type(value) is str for value in stored)


def test_compare_and_set_filters_take_members_and_strings(settings: Settings) -> None:
    # given a running job
    job_id = planned_job(settings)

    # when it is looked for by member and by string
    with session_scope(settings) as session:
        by_member = session.execute(select(Job.id).where(Job.status == JobStatus.RUNNING)).scalars().all()
        by_string = session.execute(select(Job.id).where(Job.status == "running")).scalars().all()
        in_working = session.execute(select(Job.id).where(Job.status.in_(sorted(WORKING)))).scalars().all()

    # then each finds it
    assert by_member == by_string == in_working == [job_id]


def test_a_value_outside_the_enum_is_refused(settings: Settings) -> None:
    # given a job
    job_id = planned_job(settings)

    # when a status that is no JobStatus is written
    # then the write is refused before it reaches the database
    with pytest.raises(Exception, match="not a JobStatus"), session_scope(settings) as session:
        session.execute(Job.__table__.update().where(Job.id == job_id).values(status="paused"))
    with session_scope(settings) as session:
        assert session.execute(select(Job.status).where(Job.id == job_id)).scalar_one() is JobStatus.RUNNING
