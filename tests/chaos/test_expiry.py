"""A job past its completion window ends `expired`: finished parts stay downloadable, no more work runs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from datetime import timedelta

import pytest

from shared import queue
from shared.models import utcnow
from tests.chaos.checks import check_job
from tests.chaos.conftest import Stack, parent_of, wait_until
from tests.chaos.faults import owner_pid

pytestmark = pytest.mark.chaos


def test_a_job_past_its_window_expires_keeping_its_finished_parts(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: a job with some parts done; the worker's pool child is frozen in the middle of the next
    stack.start_worker("w1")
    job = stack.submit(200)
    wait_until(lambda: stack.job(job.job_id).parts_done >= 2, 120, "two parts to finish")
    w1 = stack.main_pid("w1")
    running = stack.wait_running_part(job.job_id, owner=lambda pid: parent_of(pid) == w1)
    child = owner_pid(running)
    os.kill(child, signal.SIGSTOP)
    try:
        # when: its completion window passes (the API's shortest window is a minute: set it in SQL)
        stack.set_job(job.job_id, expires_at=utcnow() - timedelta(seconds=1))
        # then: the reconciler (beat) stops it like a cancel
        wait_until(lambda: stack.job(job.job_id).status == "cancelling", 30, "the reconciler to expire it")
    finally:
        os.kill(child, signal.SIGCONT)
    final = stack.wait_job(job.job_id)

    # then: it ended expired; what finished is in the output, the rest was skipped and never ran
    check_job(stack, job, chaos_report, faults=1, status="expired")
    assert final.error_code == "expired"
    parts = stack.parts(job.job_id)
    skipped = [p for p in parts if p.status == "skipped"]
    assert skipped and all(p.attempts == 0 for p in skipped)
    # and: the finished parts are downloadable
    r = stack.http.get(f"/v1/jobs/{job.job_id}/results", headers=stack.headers)
    assert r.status_code == 200
    done_ids = [i for p in parts if p.status == "done" for i in job.ids[p.first_record : p.first_record + p.records]]
    assert [json.loads(line)["id"] for line in r.data.decode().splitlines()] == done_ids
    # and: messages for the skipped parts (a late duplicate, a reconciler) do no work
    for p in skipped:
        queue.send(queue.TASK_RUN_PART, [p.id], settings=stack.settings)
    wait_until(
        lambda: stack.procs.logs("w1").count("'skipped'") >= len(skipped), 30, "the late messages to be read"
    )
    assert [(p.status, p.attempts) for p in stack.parts(job.job_id) if p.status == "skipped"] == [
        ("skipped", 0)
    ] * len(skipped)
    assert stack.job(job.job_id).status == "expired"
