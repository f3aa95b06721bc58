"""Postgres restarted during a job: workers retry, the API answers 503 (never 500), no job is lost."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.chaos.checks import check_job
from tests.chaos.conftest import Stack, wait_until
from tests.e2e.conftest import free_port, wait_ready

pytestmark = pytest.mark.chaos

OUTAGE_LOG_SIGNS = ("OperationalError", "heartbeat for part")


def test_postgres_restarted_mid_job_answers_503_and_loses_nothing(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: `inferq serve` and two workers on the stack's own Postgres, and a job under way
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.procs.start("serve", ["serve", "--port", str(port), "--threads", "4"], stack.env)
    stack.start_worker("w1")
    stack.start_worker("w2", beat=False)
    wait_ready(url, stack.procs)
    job = stack.submit(200)
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    stack.wait_running_part(job.job_id)

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
        # and: the workers met the outage (a failed heartbeat or a task retry) before it ends
        wait_until(
            lambda: any(s in stack.procs.logs(w) for w in ("w1", "w2") for s in OUTAGE_LOG_SIGNS),
            60,
            "a worker to hit the outage",
            interval=0.2,
        )
    finally:
        # when: Postgres comes back with the same data folder
        stack.pg.start()

    # then: the job finishes with every record once, and the API answers again
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=1)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"/v1/jobs/{job.job_id}", headers=auth).json()["status"] == "succeeded"
        assert client.get("/readyz").status_code == 200
    assert "internal_error" not in stack.procs.logs("serve")
