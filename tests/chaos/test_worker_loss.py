"""Workers that die: `kill -9` of a pool child, of a whole worker, and of every attempt at one part."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from shared.states import TERMINAL
from tests.chaos.checks import check_job
from tests.chaos.conftest import Stack, owner_pid, parent_of, wait_until
from tests.chaos.faults import kill_mid_part

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

TERMINAL_NAMES = {s.value for s in TERMINAL}


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
