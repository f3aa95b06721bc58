"""Job states: the transition rules (`shared.states`) and the compare-and-set writers (`shared.jobs`)
on a real SQLite database migrated to head. Terminal states never change, duplicates lose, and
progress counters only grow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from inferq.shared import jobs
from inferq.shared.db import session_scope
from inferq.shared.ids import new_id
from inferq.shared.jobs import Lease, PartSpec
from inferq.shared.models import Job, JobEvent, JobPart, Tenant, utcnow
from inferq.shared.settings import Settings
from inferq.shared.states import ALLOWED, LIVE, TERMINAL, WORKING, JobStatus, can_move, sources_of

LEASE_SECONDS = 60

# ---- the rules -----------------------------------------------------------------------------------


def test_terminal_states_lead_nowhere_and_every_live_state_can_end() -> None:
    for status in JobStatus:
        if status in TERMINAL:
            assert ALLOWED[status] == frozenset(), status
        else:
            assert ALLOWED[status] & TERMINAL, f"{status} can never finish"
    assert LIVE == frozenset(JobStatus) - TERMINAL
    assert WORKING <= LIVE


@pytest.mark.parametrize(
    ("src", "dst", "allowed"),
    [
        (JobStatus.QUEUED, JobStatus.RUNNING, True),
        (JobStatus.RUNNING, JobStatus.FINALIZING, True),
        (JobStatus.FINALIZING, JobStatus.SUCCEEDED, True),
        (JobStatus.CANCELLING, JobStatus.CANCELLED, True),
        (JobStatus.QUEUED, JobStatus.SUCCEEDED, False),
        (JobStatus.RUNNING, JobStatus.QUEUED, False),
        (JobStatus.FINALIZING, JobStatus.RUNNING, False),
        (JobStatus.CANCELLING, JobStatus.RUNNING, False),
        (JobStatus.SUCCEEDED, JobStatus.FAILED, False),
        (JobStatus.CANCELLED, JobStatus.QUEUED, False),
    ],
)
def test_can_move_follows_the_table(src: JobStatus, dst: JobStatus, allowed: bool) -> None:
    assert can_move(src, dst) is allowed


def test_sources_of_is_the_inverse_of_the_table() -> None:
    assert sources_of(JobStatus.FINALIZING) == {JobStatus.RUNNING}
    assert sources_of(JobStatus.CANCELLED) == {JobStatus.CANCELLING}
    assert sources_of(JobStatus.QUEUED) == frozenset()
    for dst in JobStatus:
        assert all(can_move(src, dst) for src in sources_of(dst))


# ---- compare-and-set writers on SQLite ------------------------------------------------------------


@pytest.fixture
def settings(embedded_settings: Settings) -> Settings:
    return embedded_settings


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    """A session whose work the test commits step by step with `session.commit()`."""
    with session_scope(settings) as s:
        yield s


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


PATHS_TO_TERMINAL = {
    JobStatus.SUCCEEDED: [JobStatus.RUNNING, JobStatus.FINALIZING, JobStatus.SUCCEEDED],
    JobStatus.FAILED: [JobStatus.RUNNING, JobStatus.FAILED],
    JobStatus.CANCELLED: [JobStatus.CANCELLING, JobStatus.CANCELLED],
    JobStatus.EXPIRED: [JobStatus.EXPIRED],
}


def test_a_new_job_is_queued_with_a_state_event(session: Session) -> None:
    # when a job is created
    job_id = new_job(session)

    # then it is queued and its log says so
    assert status_of(session, job_id) == "queued"
    event = session.execute(select(JobEvent).where(JobEvent.job_id == job_id)).scalar_one()
    assert (event.kind, event.from_status, event.to_status) == ("state", None, "queued")


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_never_change(session: Session, terminal: JobStatus) -> None:
    # given a job that reached a terminal state
    job_id = new_job(session)
    for step in PATHS_TO_TERMINAL[terminal]:
        assert jobs.transition(session, job_id, step) is not None
    session.commit()
    finished_at = session.execute(select(Job.finished_at).where(Job.id == job_id)).scalar_one()
    assert finished_at is not None
    logged = events_of(session, job_id)

    # when every move, a cancel and a failure are attempted
    for target in JobStatus:
        assert jobs.transition(session, job_id, target) is None
    assert jobs.request_cancel(session, job_id) is None
    assert jobs.fail_job(session, job_id, "late", "too late") is False
    session.commit()

    # then nothing changed and nothing was logged
    assert status_of(session, job_id) == terminal.value
    assert events_of(session, job_id) == logged
    assert jobs.is_cancelled(session, job_id)


def test_transition_only_applies_from_the_given_sources(session: Session) -> None:
    # given a queued job
    job_id = new_job(session)

    # when it is moved to failed, but only from running
    left = jobs.transition(session, job_id, JobStatus.FAILED, sources=frozenset({JobStatus.RUNNING}))

    # then nothing happened
    assert left is None
    assert status_of(session, job_id) == "queued"


def test_a_duplicate_finalize_loses(session: Session) -> None:
    # given a running job whose one part completes
    job_id = new_job(session)
    (part_id,) = plan(session, job_id)
    lease = claim(session, part_id, "w1")
    assert lease is not None
    fan_in = jobs.complete_part(session, lease, 10, 0, "out", "err")
    session.commit()
    assert fan_in is not None and fan_in.finalize
    assert status_of(session, job_id) == "finalizing"

    # when the same completion is delivered again, and finalizing is entered again
    again = jobs.complete_part(session, lease, 10, 0, "out", "err")
    twice = jobs.transition(session, job_id, JobStatus.FINALIZING)
    session.commit()

    # then both lose, and the job counted its part once
    assert again is None
    assert twice is None
    done, total = session.execute(select(Job.parts_done, Job.parts_total).where(Job.id == job_id)).one()
    assert (done, total) == (1, 1)
    assert progress_of(session, job_id) == (10, 0)


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


def test_a_duplicate_claim_loses_until_the_lease_lapses_then_the_old_holder_is_fenced(
    session: Session,
) -> None:
    # given a part claimed by worker 1
    job_id = new_job(session)
    (part_id,) = plan(session, job_id)
    first = claim(session, part_id, "w1")
    assert first is not None

    # when worker 2 claims it while the lease holds
    # then it loses
    assert claim(session, part_id, "w2") is None

    # and when the lease lapses, worker 2 takes it with a newer token
    expire_lease(session, part_id)
    second = claim(session, part_id, "w2")
    assert second is not None
    assert second.token == first.token + 1
    assert second.attempt == 2

    # and worker 1 can no longer report or complete
    assert jobs.heartbeat(session, first, LEASE_SECONDS, 5, 0) is False
    assert jobs.complete_part(session, first, 10, 0, "out", "err") is None
    session.commit()
    fan_in = jobs.complete_part(session, second, 10, 0, "out", "err")
    session.commit()
    assert fan_in is not None and fan_in.finalize
    kinds = list(session.execute(select(JobEvent.kind).where(JobEvent.job_id == job_id)).scalars())
    assert kinds.count("retry") == 1


def test_no_claim_on_a_job_that_stopped_working(session: Session) -> None:
    # given a planned job that was cancelled
    job_id = new_job(session)
    (part_id,) = plan(session, job_id)
    assert jobs.request_cancel(session, job_id) == "running"
    session.commit()

    # when a worker claims its part
    # then it gets nothing
    assert claim(session, part_id, "w1") is None
    assert jobs.is_cancelled(session, job_id)


def test_progress_high_water_marks_never_decrease_within_an_attempt(session: Session) -> None:
    # given a part of 10 records under a lease
    job_id = new_job(session)
    (part_id,) = plan(session, job_id)
    lease = claim(session, part_id, "w1")
    assert lease is not None

    # when progress is reported, then reported lower
    assert jobs.heartbeat(session, lease, LEASE_SECONDS, 5, 1)
    session.commit()
    assert progress_of(session, job_id) == (5, 1)
    assert jobs.heartbeat(session, lease, LEASE_SECONDS, 3, 0)
    session.commit()

    # then the job keeps the higher counts
    assert progress_of(session, job_id) == (5, 1)

    # and a retry on another worker takes back the lapsed attempt's progress (its work is lost) and
    # counts its own from zero: nothing is counted twice, nothing that is in no file stays counted
    expire_lease(session, part_id)
    retry = claim(session, part_id, "w2")
    assert retry is not None
    session.commit()
    assert progress_of(session, job_id) == (0, 0)
    assert jobs.heartbeat(session, retry, LEASE_SECONDS, 4, 1)
    session.commit()
    assert progress_of(session, job_id) == (4, 1)
    assert jobs.complete_part(session, retry, 8, 2, "out", "err") is not None
    session.commit()
    assert progress_of(session, job_id) == (8, 2)

    # and nothing moves them after the part is done
    assert jobs.heartbeat(session, retry, LEASE_SECONDS, 100, 100) is False
    session.commit()
    assert progress_of(session, job_id) == (8, 2)


def test_the_last_of_several_parts_finalizes_exactly_once(session: Session) -> None:
    # given a job of three parts
    job_id = new_job(session)
    part_ids = plan(session, job_id, parts=3)

    # when they complete one after another
    finals = []
    for i, part_id in enumerate(part_ids):
        lease = claim(session, part_id, f"w{i}")
        assert lease is not None
        fan_in = jobs.complete_part(session, lease, 10, 0, f"o{i}", f"e{i}")
        session.commit()
        assert fan_in is not None
        finals.append(fan_in.finalize)

    # then only the last one moved the job to finalizing, with every record counted
    assert finals == [False, False, True]
    assert status_of(session, job_id) == "finalizing"
    assert progress_of(session, job_id) == (30, 0)
