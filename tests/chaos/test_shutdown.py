"""SIGTERM in the middle of a part: the part finishes or is handed back at once, not after its lease."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import Stack, parent_of

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

LEASE = 30  # long, so that "at once" and "when the lease lapsed" cannot be confused
AT_ONCE = 8


@pytest.mark.parametrize("target", ["main", "group"])
def test_sigterm_mid_part_finishes_or_hands_the_part_back_at_once(
    target: str, make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: a worker running a part under a 30 s lease
    stack = make_stack(INFERQ_LEASE_SECONDS=str(LEASE), INFERQ_RESEND_AFTER_SECONDS="60")
    stack.start_worker("w1")
    job = stack.submit(200)
    main = stack.main_pid("w1")
    part = stack.wait_running_part(job.job_id, owner=lambda pid: parent_of(pid) == main)
    # (after its first heartbeat: the worker is working on the part, not still committing the claim)
    wait_until(
        lambda: (p := stack.part(part.id)).status != "running" or p.lease_expires_at != part.lease_expires_at,
        10,
        "the part's first heartbeat",
    )
    assert stack.part(part.id).status == "running", "the part finished before its first heartbeat"

    # when: SIGTERM goes to the worker's main process (`kill PID`, Docker) or to its whole process
    # group (systemd's default KillMode, Ctrl-C in a terminal)
    signalled = time.monotonic()
    if target == "group":
        stack.procs.signal_group("w1", signal.SIGTERM)
    else:
        stack.procs.signal_main("w1", signal.SIGTERM)

    # then: within a few seconds the part is done or back in the queue, and the worker has exited
    stack.wait_part(part.id, {"done", "queued"}, timeout=AT_ONCE)
    assert time.monotonic() - signalled < LEASE / 2
    assert stack.procs.wait_exit("w1", timeout=30) == 0, stack.procs.logs("w1")[-3000:]
    # and: a new worker finishes the job with every record once
    stack.start_worker("w2")
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=1)
    # and: a shutdown is not the part's fault: the interrupted attempt did not count
    assert stack.part(part.id).attempts == 1
    released = [e for e in stack.events(job.job_id, "part_released") if e.data.get("part_id") == part.id]
    if target == "group":  # the pool child got SIGTERM too: it handed the part back
        assert released and "shutting down" in (released[0].message or "")
    else:  # warm shutdown: the child finished the part before the worker exited
        assert not released and stack.part(part.id).lease_owner == part.lease_owner
