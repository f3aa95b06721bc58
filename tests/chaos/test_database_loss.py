"""Postgres restarted during a job: workers retry, the API answers 503 (never 500), no job is lost."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import Stack
from tests.helpers.ports import free_port
from tests.helpers.processes import wait_ready

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

MID_PART_OUTAGE = "cannot commit yet"  # worker.runner: a part finished while the database was down


def test_postgres_restarted_mid_job_answers_503_and_loses_nothing(
    make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: `inferq serve` and two workers on the stack's own Postgres, giving a part one attempt only
    # (an outage must not count as a failed attempt), and a job under way
    stack = make_stack(INFERQ_MAX_PART_ATTEMPTS="1", INFERQ_LEASE_SECONDS="10")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.procs.start("serve", ["serve", "--port", str(port), "--threads", "4"], stack.env)
    stack.start_worker("w1")
    stack.start_worker("w2", beat=False)
    wait_ready(url, stack.procs)
    job = stack.submit(200)
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    running = stack.wait_running_part(job.job_id)

    # when: Postgres goes down in the middle of the job
    stack.pg.stop()
    try:
        # then: while it is down the API answers 503 with the one error shape, never 500
        with httpx.Client(base_url=url, timeout=30) as client:
            r = client.get(f"/v1/jobs/{job.job_id}", headers=auth)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "database_unavailable"
            assert set(r.json()["error"]) == {"code", "message", "field"}
            ready = client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["database"]["ok"] is False
            assert ready.json()["error"]["code"] == "not_ready"
        # and: the outage lasts until a part that was running finished and could not commit
        wait_until(
            lambda: any(MID_PART_OUTAGE in stack.procs.logs(w) for w in ("w1", "w2")),
            60,
            "a running part to meet the outage",
            interval=0.1,
        )
    finally:
        # when: Postgres comes back with the same data folder
        stack.pg.start()

    # then: the job finishes with every record once, and the API answers again
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=1)
    assert stack.part(running.id).attempts == 1  # the outage did not cost the part an attempt
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"/v1/jobs/{job.job_id}", headers=auth).json()["status"] == "succeeded"
        assert client.get("/readyz").status_code == 200
    assert "internal_error" not in stack.procs.logs("serve")
