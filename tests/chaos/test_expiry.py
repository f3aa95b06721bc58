"""A job past its completion window ends `expired`: finished parts stay downloadable, no more work runs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from datetime import timedelta

import pytest

from inferq.shared import queue
from inferq.shared.models import utcnow
from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_faults import freeze_mid_part
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def test_a_job_past_its_window_expires_keeping_its_finished_parts(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: a control worker (reconciler beat, finalizer) and an inference worker; a job with some
    # parts done, and the inference worker's pool child frozen (SIGSTOP) in the middle of the next
    stack.start_worker("control", queues="control")
    stack.start_worker("w1", queues="inference", beat=False)
    job = stack.submit(200)
    wait_until(lambda: stack.job(job.job_id).parts_done >= 2, 120, "two parts to finish")
    frozen, child = freeze_mid_part(stack, job.job_id, "w1")
    try:
        # when: its completion window passes (the API's shortest window is a minute: set it in SQL)
        stack.set_job(job.job_id, expires_at=utcnow() - timedelta(seconds=1))
        # then: the reconciler stops it; once the frozen part's lease lapses, the job ends expired
        final = stack.wait_job(job.job_id, timeout=60)
    finally:
        os.kill(child, signal.SIGCONT)

    # then: what finished is in the output; the rest, the frozen part too, was skipped
    check_job(stack, job, chaos_report, faults=1, status="expired")
    assert final.error_code == "expired"
    parts = stack.parts(job.job_id)
    skipped = [p for p in parts if p.status == "skipped"]
    assert frozen.id in {p.id for p in skipped}
    # and: the finished parts are downloadable
    r = stack.http.get(f"/v1/jobs/{job.job_id}/results", headers=stack.headers)
    assert r.status_code == 200
    done = [p for p in parts if p.status == "done"]
    assert [json.loads(line)["id"] for line in r.data.decode().splitlines()] == [
        i for p in done for i in job.ids[p.first_record : p.first_record + p.records]
    ]
    # and: no more work: the thawed worker cannot write, late messages for skipped parts do nothing
    stack.procs.wait_for_log("w1", f"part {frozen.id} stopped: lease_lost", timeout=30)
    for p in skipped:
        queue.send(queue.TASK_RUN_PART, [p.id], settings=stack.settings)
    wait_until(
        lambda: stack.procs.logs("w1").count("'skipped'") >= len(skipped), 30, "the late messages to be read"
    )
    after = stack.parts(job.job_id)
    assert [(p.status, p.attempts, p.lease_token) for p in after] == [
        (p.status, p.attempts, p.lease_token) for p in parts
    ]
    assert (stack.job(job.job_id).status, stack.job(job.job_id).completed) == ("expired", final.completed)
