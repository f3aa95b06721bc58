"""The same part delivered twice: one commit wins, the other is discarded by the fencing token."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import timedelta

import pytest

from inferq.shared import queue
from inferq.shared.models import JobPart, utcnow
from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_faults import freeze_mid_part
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def lapsed_or_taken(stack: Stack, stale: JobPart) -> bool:
    """The lease `stale` held has lapsed, or another worker (sent by the reconciler) already took it."""
    part = stack.part(stale.id)
    if part.lease_token != stale.lease_token:
        return True
    return part.lease_expires_at is not None and part.lease_expires_at < utcnow() - timedelta(seconds=1)


def test_duplicate_messages_and_a_stale_lease_holder_commit_each_part_once(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: two workers and a job of 10 parts
    stack.start_worker("w1")
    stack.start_worker("w2", beat=False)
    job = stack.submit(200)
    parts = wait_until(lambda: stack.parts(job.job_id), 60, "the plan")

    # when: every part's message is published a second time, so both workers get copies at once
    for part in parts:
        queue.send(queue.TASK_RUN_PART, [part.id], settings=stack.settings)
    # and: w1's pool child freezes (SIGSTOP: a GC pause, a stalled VM) in the middle of a part until its
    # lease lapses, the part is sent again, and w2 claims and finishes it while w1 is still frozen
    stale, frozen = freeze_mid_part(stack, job.job_id, "w1")
    try:
        wait_until(lambda: lapsed_or_taken(stack, stale), 30, "the frozen worker's lease to lapse", 0.2)
        queue.send(queue.TASK_RUN_PART, [stale.id], settings=stack.settings)
        taken = stack.wait_part(stale.id, {"done"}, timeout=60)
    finally:
        # then: the frozen worker wakes up holding a token that no longer counts
        os.kill(frozen, signal.SIGCONT)
    stack.wait_job(job.job_id)
    checked = check_job(stack, job, chaos_report, faults=len(parts) + 2)
    assert taken.lease_token == stale.lease_token + 1 and taken.lease_owner != stale.lease_owner
    assert all(p.status == "done" for p in stack.parts(job.job_id))
    stack.procs.wait_for_log("w1", f"part {stale.id} ", timeout=30)  # "stopped: lease_lost" or "discarded"
    assert "finished but its lease was taken over" in stack.procs.logs("w1") or (
        f"part {stale.id} stopped: lease_lost" in stack.procs.logs("w1")
    )
    # and: the output is byte for byte what a run without faults gives
    again = stack.submit(200)
    stack.wait_job(again.job_id)
    assert check_job(stack, again, chaos_report, faults=0).output == checked.output
