"""Throughput and ETA in the job object, measured from the parts a real worker ran."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from inferq.shared.settings import Settings
from inferq.worker.finalizer import finalize_job
from inferq.worker.runner import run_part
from tests.helpers.tenant_http import Http
from tests.integration.test_partial_results import planned_job

pytestmark = pytest.mark.integration


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    """planned_job's parts of 20 records. (`http` is the shared one of tests/conftest.py.)"""
    return make_worker_settings(INFERQ_PART_RECORDS="20")


def test_a_running_job_shows_its_rate_and_eta_then_its_average_when_done(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a job of three parts of which one has run
    job_id, parts, _ = planned_job(client, headers, worker_settings, tmp_path, records=58)
    assert run_part(parts[0], worker_settings) == "done"

    # when: the job is read while it runs
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()

    # then: it shows a rate over the last minute, tokens per second, the batches' padding and an ETA
    assert job["status"] == "running"
    rates = job["throughput"]
    assert rates["records_per_second"] > 0
    assert rates["tokens_per_second"] > 0
    assert 0 <= rates["padding_ratio"] < 1
    remaining = job["progress"]["total"] - job["progress"]["completed"] - job["progress"]["failed"]
    # (both figures are rounded: the ETA to 0.1 s, the rate to 0.01 records/s)
    assert rates["eta_seconds"] == pytest.approx(remaining / rates["records_per_second"], rel=0.05, abs=0.15)
    assert rates["running_workers"] == []  # nothing holds a lease now
    listed = client.get("/v1/jobs?status=running", headers=headers).get_json()["data"]
    assert [j["throughput"]["records_per_second"] > 0 for j in listed if j["id"] == job_id] == [True]

    # when: the rest runs and the job is finalized
    for part in parts[1:]:
        assert run_part(part, worker_settings) == "done"
    assert finalize_job(job_id, worker_settings) == "succeeded"
    done = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()

    # then: the average over the whole run, with nothing left to wait for
    assert done["throughput"]["records_per_second"] > 0
    assert done["throughput"]["tokens_per_second"] > 0
    assert done["throughput"]["eta_seconds"] == 0.0
