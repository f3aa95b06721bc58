"""`worker.lease` on a real SQLite database migrated to head: the heartbeat extends the lease and
publishes progress, a lost lease and a stopped job are flagged, and a failed attempt is released and
sent again after a growing backoff."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.shared import jobs, queue
from inferq.shared.db import session_scope
from inferq.shared.jobs import Lease
from inferq.shared.models import JobEvent, JobPart
from inferq.shared.settings import Settings
from inferq.shared.states import PartStatus
from inferq.worker import lease as leasing
from inferq.worker.lease import Heartbeat, Outcome, Progress, Stop
from tests.unit.jobs.rows import LEASE_SECONDS, claim, expire_lease, new_job, plan, progress_of


@pytest.fixture
def settings(embedded_settings: Settings) -> Settings:
    return replace(embedded_settings, lease_seconds=LEASE_SECONDS, heartbeat_seconds=1)


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with session_scope(settings) as s:
        yield s


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any], float | None]]:
    """The broker messages the lease module sends: (task, args, countdown)."""
    messages: list[tuple[str, list[Any], float | None]] = []

    def record(
        name: str, args: list[Any], *, countdown: float | None = None, settings: Settings | None = None
    ) -> bool:
        messages.append((name, args, countdown))
        return True

    monkeypatch.setattr(queue, "try_send", record)
    return messages


def leased_part(session: Session) -> Lease:
    job_id = new_job(session)
    (part_id,) = plan(session, job_id)
    lease = claim(session, part_id, "w1")
    assert lease is not None
    return lease


def expiry_of(session: Session, part_id: str) -> datetime:
    session.expire_all()
    expires = session.execute(select(JobPart.lease_expires_at).where(JobPart.id == part_id)).scalar_one()
    assert expires is not None
    return expires


def test_a_heartbeat_extends_the_lease_and_publishes_progress(session: Session, settings: Settings) -> None:
    # given a part under a lease, with progress made
    lease = leased_part(session)
    before = expiry_of(session, lease.part_id)
    progress = Progress(completed=4, failed=1)
    time.sleep(0.01)

    # when the heartbeat beats
    Heartbeat(lease, progress, settings).beat()

    # then the lease runs later, the job shows the progress, and nothing asks the work to stop
    assert expiry_of(session, lease.part_id) > before
    assert progress_of(session, lease.job_id) == (4, 1)
    assert progress.stop is None


def test_the_heartbeat_thread_beats_while_the_work_is_held(session: Session, settings: Settings) -> None:
    # given a part under a lease
    lease = leased_part(session)

    # when work runs under `held` for longer than a heartbeat interval
    with leasing.held(lease, settings) as (progress, heartbeat):
        with progress.lock:
            progress.completed = 7
        deadline = time.monotonic() + 10
        while progress_of(session, lease.job_id) != (7, 0) and time.monotonic() < deadline:
            session.expire_all()
            time.sleep(0.1)

    # then the thread published the progress, and it has stopped with the block
    assert progress_of(session, lease.job_id) == (7, 0)
    assert not heartbeat.is_alive()


def test_a_lost_lease_is_flagged(session: Session, settings: Settings) -> None:
    # given a part whose lease lapsed and that another worker claimed
    lease = leased_part(session)
    expire_lease(session, lease.part_id)
    assert claim(session, lease.part_id, "w2") is not None
    progress = Progress(completed=3)

    # when the first worker's heartbeat beats
    Heartbeat(lease, progress, settings).beat()

    # then its work is told to stop, and its progress was not published
    assert progress.stop is Stop.LEASE_LOST
    assert progress_of(session, lease.job_id) == (0, 0)
    # and stopping then writes nothing: the part belongs to the other worker
    assert leasing.stopped(lease, progress, settings, "stopped") is Outcome.LOST


def test_a_stopped_job_is_flagged_and_its_part_released(session: Session, settings: Settings) -> None:
    # given a running part whose job is cancelled
    lease = leased_part(session)
    assert jobs.request_cancel(session, lease.job_id) is not None
    session.commit()
    progress = Progress()

    # when the heartbeat beats, and the work stops
    Heartbeat(lease, progress, settings).beat()
    outcome = leasing.stopped(lease, progress, settings, "job stopped")

    # then the work was told the job stopped, and the part is queued again with its reason logged
    assert progress.stop is Stop.CANCELLED
    assert outcome is Outcome.RELEASED
    session.expire_all()
    assert session.get(JobPart, lease.part_id).status == PartStatus.QUEUED  # type: ignore[union-attr]
    kinds = session.execute(select(JobEvent.kind).where(JobEvent.job_id == lease.job_id)).scalars()
    assert "part_released" in list(kinds)


@pytest.mark.parametrize(("attempts", "countdown"), [(1, 2), (3, 8), (5, 30), (9, 30)])
def test_a_failed_attempt_is_released_and_sent_again_after_a_backoff(
    session: Session,
    settings: Settings,
    sent: list[tuple[str, list[Any], float | None]],
    attempts: int,
    countdown: int,
) -> None:
    # given a part under a lease
    lease = leased_part(session)

    # when its attempt number `attempts` fails
    outcome = leasing.release_for_retry(lease, settings, attempts, "boom", queue.TASK_RUN_PART)

    # then the part is queued again and its message goes after a backoff that grows, up to a cap
    assert outcome is Outcome.RELEASED
    session.expire_all()
    assert session.get(JobPart, lease.part_id).status == PartStatus.QUEUED  # type: ignore[union-attr]
    assert sent == [(queue.TASK_RUN_PART, [lease.part_id], countdown)]


def test_a_release_after_the_lease_was_lost_sends_nothing(
    session: Session, settings: Settings, sent: list[tuple[str, list[Any], float | None]]
) -> None:
    # given a part whose lease another worker took over
    lease = leased_part(session)
    expire_lease(session, lease.part_id)
    assert claim(session, lease.part_id, "w2") is not None

    # when the first worker's failed attempt is released
    leasing.release_for_retry(lease, settings, 1, "boom", queue.TASK_TRAIN)

    # then the part stays with the other worker, and no message goes
    session.expire_all()
    assert session.get(JobPart, lease.part_id).status == PartStatus.RUNNING  # type: ignore[union-attr]
    assert sent == []


def test_a_hand_back_does_not_count_the_attempt(
    session: Session, settings: Settings, sent: list[tuple[str, list[Any], float | None]]
) -> None:
    # given a part on its first attempt
    lease = leased_part(session)

    # when the worker hands it back (shutting down) and asks for it to run again at once
    leasing.hand_back(lease, settings, "worker shutting down", resend=queue.TASK_RUN_PART)

    # then it is queued with no attempt counted, and its message goes now
    session.expire_all()
    part = session.get(JobPart, lease.part_id)
    assert part is not None and (part.status, part.attempts) == (PartStatus.QUEUED, 0)
    assert sent == [(queue.TASK_RUN_PART, [lease.part_id], None)]


def test_giving_up_fails_the_part_and_the_last_part_finalizes(
    session: Session, settings: Settings, sent: list[tuple[str, list[Any], float | None]]
) -> None:
    # given the one part of a job, under a lease
    lease = leased_part(session)

    # when the worker gives up on it
    outcome = leasing.give_up(lease, settings, "worker_lost", "lost too often", "err", "out")

    # then its records count as failed and the job's finalize message goes
    assert outcome is Outcome.FAILED
    assert progress_of(session, lease.job_id) == (0, 10)
    assert sent == [(queue.TASK_FINALIZE, [lease.job_id], None)]


@pytest.mark.parametrize(("attempts", "lost", "last"), [(1, False, False), (3, False, True), (4, True, True)])
def test_attempts_allowed(settings: Settings, attempts: int, lost: bool, last: bool) -> None:
    # given the default of 3 attempts a part
    assert settings.max_part_attempts == 3
    # then a 4th claim means the workers were lost, and the 3rd failure is the last
    assert leasing.lost_too_often(attempts, settings) is lost
    assert leasing.out_of_attempts(attempts, settings) is last
