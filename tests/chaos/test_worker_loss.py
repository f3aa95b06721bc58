"""Workers that die: `kill -9` of a pool child, of a whole worker, and of every attempt at one part; and
of a whole worker in a deployment without beat, where the other worker's reconciler timer recovers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from shared.db import read_scope
from shared.models import utcnow
from shared.reconciler_state import read_last_run
from shared.states import TERMINAL
from tests.chaos.checks import check_job
from tests.chaos.conftest import FAST_ENV, Stack, owner_pid, parent_of, wait_until
from tests.chaos.faults import kill_mid_part

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

TERMINAL_NAMES = {s.value for s in TERMINAL}
# A dead worker's part runs again within its lease + one reconcile interval; this much more is allowed
# for the re-sent message to reach the free worker and for a slow, shared test machine.
RECOVERY_SLACK_SECONDS = 10


def test_kill_9_of_a_pool_child_and_of_a_whole_worker_loses_nothing(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: one worker (with the reconciler beat) running a job of 200 records in 10 parts
    stack.start_worker("w1")
    job = stack.submit(200)

    # when: its pool child is killed with SIGKILL in the middle of a part
    first = kill_mid_part(stack, job.job_id, "w1")
    # and: later the whole worker (main process, pool child, beat) is killed in the middle of a part
    second = kill_mid_part(stack, job.job_id, "w1", group=True)
    assert stack.procs.wait_exit("w1") == -signal.SIGKILL
    # and: a new worker starts
    stack.start_worker("w2")

    # then: the lapsed leases were taken again and the job finished with every record once
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=2)
    for lost in (first, second):
        part = stack.part(lost.id)
        assert part.status == "done" and part.lease_token > lost.lease_token
        assert part.attempts >= 2 and part.lease_owner != lost.lease_owner


def test_a_part_that_kills_its_worker_every_time_fails_alone_as_worker_lost(
    make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: a worker that gives a part 2 attempts, and a job of 10 parts
    stack = make_stack(INFERQ_MAX_PART_ATTEMPTS="2")
    stack.start_worker("w1")
    job = stack.submit(200)
    poison = wait_until(lambda: stack.parts(job.job_id)[3:4], 60, "the plan")[0]
    main = stack.main_pid("w1")
    kills: list[int] = []

    def kill_attempt_or_finished() -> bool:
        """Kill the process holding part 3 during a counted attempt; True once the job has ended."""
        part = stack.part(poison.id)
        if part.status == "running" and part.attempts <= 2 and part.lease_owner:
            pid = owner_pid(part)
            if pid not in kills and parent_of(pid) == main:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
        stack.procs.assert_alive()
        return stack.job(job.job_id).status in TERMINAL_NAMES

    # when: every attempt at part 3 kills the process running it (as an out-of-memory kill would)
    wait_until(kill_attempt_or_finished, 180, "the job to end while part 3 keeps killing its worker")

    # then: after 2 lost attempts the third claim gives up on the part: its records are errors
    final = stack.part(poison.id)
    assert len(kills) == 2 and final.status == "failed" and final.attempts == 3
    failed = job.ids[final.first_record : final.first_record + final.records]
    check_job(stack, job, chaos_report, faults=len(kills), failed_ids=failed, error_code="worker_lost")


def test_without_beat_a_killed_workers_part_runs_again_within_lease_and_one_reconcile_interval(
    make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: two workers and no beat anywhere; the broker would hand back a dead worker's message only
    # after an hour (its visibility timeout); leases of 6 s, a reconciler turn every 2 s (FAST_ENV)
    stack = make_stack(INFERQ_VISIBILITY_TIMEOUT="3600")
    lease, interval = (
        int(FAST_ENV["INFERQ_LEASE_SECONDS"]),
        int(FAST_ENV["INFERQ_RECONCILE_INTERVAL_SECONDS"]),
    )
    budget = lease + interval + RECOVERY_SLACK_SECONDS
    # and: w2 has its model loaded (a one-part job), so that it is free when the lost part comes back
    stack.start_worker("w2", beat=False)
    warm_up = stack.submit(20)
    stack.wait_job(warm_up.job_id)
    stack.start_worker("w1", beat=False)
    job = stack.submit(120)  # 6 parts, one message each: nothing but a re-send can run a lost part

    # when: w1 (main process and pool child) is killed with SIGKILL in the middle of a part
    lost = kill_mid_part(stack, job.job_id, "w1", group=True)
    killed, killed_at = time.monotonic(), utcnow()
    assert stack.procs.wait_exit("w1") == -signal.SIGKILL

    # then: w2's reconciler re-sent the part, and w2 runs it again within lease + one interval + slack
    try:
        again = wait_until(
            lambda: (p := stack.part(lost.id)).lease_token > lost.lease_token and p,
            budget,
            f"part {lost.index} to be claimed again",
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\n{stack.describe(job.job_id)}") from e
    recovered = time.monotonic() - killed
    assert again.lease_owner != lost.lease_owner
    assert again.sent_at is not None and again.sent_at > killed_at
    resent = (again.sent_at - killed_at).total_seconds()
    print(f"\nlost part re-sent {resent:.1f} s and claimed again {recovered:.1f} s after the kill")
    # and: the job finished with every record once
    stack.wait_job(job.job_id, timeout=budget)
    check_job(stack, job, chaos_report, faults=1)
    # and: the reconciler runs on record since the kill are w2's (w1 is dead, and there is no beat)
    with read_scope(stack.settings) as session:
        last = read_last_run(session)
    assert last.by is not None and last.by.startswith("w2@chaos") and last.at is not None
    assert last.at > killed_at
