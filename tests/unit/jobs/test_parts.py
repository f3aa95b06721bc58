"""`shared.jobs.parts` on a real SQLite database migrated to head: duplicates lose, a lapsed lease
fences its holder out, progress counters only grow within an attempt, and the last part finalizes once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.shared import jobs
from inferq.shared.models import Job, JobEvent
from inferq.shared.states import JobStatus
from tests.unit.jobs.rows import LEASE_SECONDS, claim, expire_lease, new_job, plan, progress_of, status_of


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
