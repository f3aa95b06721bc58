"""A job's progress counters equal what can be downloaded: a part that stops mid-way (released, its lease
lapsed, skipped by a cancel) takes back the progress its heartbeats published, and a part run again
counts its records once.

The planner, runner and finalizer are driven directly (no Celery worker), on Postgres, Redis and moto S3;
the mid-way attempt is a lease taken and heartbeated through `shared.jobs`, as a worker's would be.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from inferq.shared import jobs
from inferq.shared.db import session_scope
from inferq.shared.jobs import Lease
from inferq.shared.models import JobPart
from inferq.shared.settings import Settings
from inferq.worker.finalizer import finalize_job
from inferq.worker.runner import run_part
from tests.helpers.tenant_http import Http
from tests.integration.test_partial_results import drain, planned_job

pytestmark = pytest.mark.integration

MIDWAY = 12  # records a part's heartbeat says are done when it stops


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    """Parts of 20 records."""
    return make_worker_settings(INFERQ_PART_RECORDS="20")


def start_midway(settings: Settings, part_id: str, *, lease_seconds: int) -> Lease:
    """A worker's attempt at the part that has published MIDWAY records done (and 1 failed)."""
    with session_scope(settings) as session:
        lease = jobs.claim_part(session, part_id, "test-worker", lease_seconds)
        assert lease is not None
    with session_scope(settings) as session:
        assert jobs.heartbeat(session, lease, lease_seconds, MIDWAY, 1)
    return lease


def job_object(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/jobs/{job_id}", headers=headers)
    assert r.status_code == 200, r.data
    return dict(r.get_json())


def lines(client: FlaskClient, headers: dict[str, str], url: str) -> list[dict[str, Any]]:
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.data
    return [json.loads(x) for x in r.data.splitlines()]


def assert_counts_downloadable(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """progress.completed == output lines == paged results, and progress.failed == error lines."""
    job = job_object(client, headers, job_id)
    output = lines(client, headers, f"/v1/jobs/{job_id}/results")
    errors = lines(client, headers, f"/v1/jobs/{job_id}/errors")
    paged, end = drain(client, headers, job_id, "", 7)
    assert end is None
    assert [r["id"] for r in paged] == [r["id"] for r in output]
    assert job["progress"]["completed"] == len(output) == len(paged), job["progress"]
    assert job["progress"]["failed"] == len(errors), job["progress"]
    return job


def test_cancel_while_a_part_runs_midway_counts_only_finished_parts(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: 3 parts of 20; part 0 done, part 1 running with heartbeat progress published
    job_id, parts, _ = planned_job(client, headers, worker_settings, tmp_path, records=58)
    assert run_part(parts[0], worker_settings) == "done"
    lease = start_midway(worker_settings, parts[1], lease_seconds=60)
    running = job_object(client, headers, job_id)["progress"]
    assert running["completed"] == 20 + MIDWAY  # the live progress includes the running part's

    # when: the job is cancelled, the running worker sees it and releases its part, the job finalizes
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
    with session_scope(worker_settings) as session:
        assert jobs.release_part(
            session, lease, "job stopped while the part ran; its partial work is dropped"
        )
    assert finalize_job(job_id, worker_settings) == "cancelled"

    # then: the counters are part 0's lines only, as the output, the paged results and the events say
    job = assert_counts_downloadable(client, headers, job_id)
    assert job["progress"]["completed"] == 20
    events = client.get(f"/v1/jobs/{job_id}/events?limit=100", headers=headers).get_json()["data"]
    ended = [e for e in events if e.get("to_status") == "cancelled"]
    assert ended and ended[0]["data"] == {"completed": 20, "failed": 0}


def test_cancel_with_a_lapsed_lease_takes_back_its_progress(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: part 0 done, part 1 heartbeated midway by a worker that then died (its lease lapsed)
    job_id, parts, _ = planned_job(client, headers, worker_settings, tmp_path, records=58)
    assert run_part(parts[0], worker_settings) == "done"
    start_midway(worker_settings, parts[1], lease_seconds=-1)

    # when: the job is cancelled and finalized (the lapsed part is skipped)
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
    assert finalize_job(job_id, worker_settings) == "cancelled"

    # then: nothing of the lapsed attempt is counted, and its part row reports nothing either
    job = assert_counts_downloadable(client, headers, job_id)
    assert job["progress"]["completed"] == 20
    with session_scope(worker_settings) as session:
        part = session.get(JobPart, parts[1])
        assert part is not None and part.status == "skipped"
        assert (part.reported_completed, part.reported_failed) == (0, 0)


def test_a_lapsed_part_run_again_counts_once(http: Http, worker_settings: Settings, tmp_path: Path) -> None:
    client, headers = http
    # given: part 1 heartbeated midway by a worker whose lease then lapsed
    job_id, parts, ids = planned_job(client, headers, worker_settings, tmp_path, records=58)
    stale = start_midway(worker_settings, parts[1], lease_seconds=-1)

    # when: another worker takes the part again; the stale worker's late heartbeat is refused
    with session_scope(worker_settings) as session:
        lease = jobs.claim_part(session, parts[1], "second-worker", 60)
        assert lease is not None
    progress = job_object(client, headers, job_id)["progress"]
    with session_scope(worker_settings) as session:
        assert not jobs.heartbeat(session, stale, 60, MIDWAY + 5, 1)
        assert jobs.release_part(session, lease, "handed back", count_attempt=False)

    # then: the lapsed attempt's progress was taken back when the part was taken again
    assert (progress["completed"], progress["failed"]) == (0, 0)

    # when: every part runs (part 1 a third time) and the job finalizes
    for part_id in parts:
        assert run_part(part_id, worker_settings) == "done"
    assert finalize_job(job_id, worker_settings) == "succeeded"

    # then: each record counted once, equal to the files and the paged results
    job = assert_counts_downloadable(client, headers, job_id)
    assert job["progress"]["completed"] == len(ids)
    assert job["progress"]["completed"] + job["progress"]["failed"] == job["progress"]["total"]
    with session_scope(worker_settings) as session:
        rows = session.query(JobPart).filter(JobPart.job_id == job_id).all()
        assert all((p.reported_completed, p.reported_failed) == (p.completed, p.failed) for p in rows)
