"""`shared.jobs.lifecycle` on a real SQLite database migrated to head: a new job is queued, terminal
states never change, and a transition applies only from the states it names."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.shared import jobs
from inferq.shared.models import Job, JobEvent
from inferq.shared.states import TERMINAL, JobStatus
from tests.unit.jobs.rows import events_of, new_job, status_of

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
