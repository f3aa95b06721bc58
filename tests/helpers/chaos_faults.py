"""Ways to hurt a running deployment, shared by the chaos tests."""

from __future__ import annotations

import os
import signal

from inferq.shared.models import JobPart
from tests.helpers.chaos_stack import Stack, owner_pid, parent_of


def kill_mid_part(
    stack: Stack, job_id: str, worker: str, sig: int = signal.SIGKILL, *, group: bool = False
) -> JobPart:
    """Signal `worker`'s pool child (or its whole process group) while it runs a part of the job.

    Waits until SQL shows a part `running` under a pid whose parent is the worker, sends the signal
    to that pid (or to the worker's process group), and returns the part's row as it was then. If the
    part finished between the read and the signal it was not mid-part: try again on the next one.
    """
    main = stack.main_pid(worker)
    for _ in range(10):
        part = stack.wait_running_part(job_id, owner=lambda pid: parent_of(pid) == main)
        if group:
            stack.procs.signal_group(worker, sig)
        else:
            os.kill(owner_pid(part), sig)
        after = stack.part(part.id)
        if after.status == "running" and after.lease_token == part.lease_token:
            return part
        if group:
            raise AssertionError(f"a part finished before {worker} was signalled; nothing was tested")
    raise AssertionError(f"could not catch {worker} in the middle of a part")


def freeze_mid_part(stack: Stack, job_id: str, worker: str, *, group: bool = False) -> tuple[JobPart, int]:
    """SIGSTOP `worker`'s pool child (or its whole process group) while it runs a part of the job.

    Returns the part's row as it was and the frozen pid; the caller sends SIGCONT. A stopped process
    cannot change its part, so the part is checked after the stop; if it had just finished, the
    worker is thawed and the next part is tried.
    """
    main = stack.main_pid(worker)
    for _ in range(10):
        part = stack.wait_running_part(job_id, owner=lambda pid: parent_of(pid) == main)
        pid = owner_pid(part)
        if group:
            os.killpg(main, signal.SIGSTOP)
        else:
            os.kill(pid, signal.SIGSTOP)
        after = stack.part(part.id)
        if after.status == "running" and after.lease_token == part.lease_token:
            return part, pid
        if group:
            os.killpg(main, signal.SIGCONT)
        else:
            os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"could not freeze {worker} in the middle of a part")
