"""`GET /v1/jobs/{id}/results?cursor=&limit=`: the lines finished so far, while the job runs and after.

The planner, runner and finalizer are driven directly (no Celery worker), on Postgres, Redis and moto S3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from inferq.client import Client
from inferq.shared.settings import Settings
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.runner import part_ids_of, run_part
from tests.e2e.inputs import write_mixed_input
from tests.helpers.tenant_http import Http
from tests.integration.test_worker_pipeline import submit, upload

pytestmark = pytest.mark.integration


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    """Parts of 20 records. (`http` is the shared one of tests/conftest.py.)"""
    return make_worker_settings(INFERQ_PART_RECORDS="20")


def planned_job(
    client: FlaskClient, headers: dict[str, str], settings: Settings, tmp_path: Path, records: int
) -> tuple[str, list[str], list[str]]:
    """An embedding job over `records` good sentences (and a few broken lines), planned into parts of
    20; returns its id, its part ids and the good records' ids in input order."""
    path, texts, _ = write_mixed_input(tmp_path / "in.jsonl", records=records, broken_every=25)
    file_id = upload(client, headers, path)
    job_id = str(submit(client, headers, task="embedding", model="minilm-l6", input_file=file_id)["id"])
    plan_job(job_id, settings)
    return job_id, part_ids_of(settings, job_id), [t[0] for t in texts]


def page(
    client: FlaskClient, headers: dict[str, str], job_id: str, cursor: str, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    r = client.get(f"/v1/jobs/{job_id}/results?cursor={cursor}&limit={limit}", headers=headers)
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"].startswith("application/jsonl")
    return [json.loads(x) for x in r.data.splitlines()], r.headers.get("X-Next-Cursor")


def drain(
    client: FlaskClient, headers: dict[str, str], job_id: str, cursor: str, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Every line available from `cursor` on, page by page, and the cursor after them (None: no more)."""
    rows: list[dict[str, Any]] = []
    next_cursor: str | None = cursor
    while next_cursor is not None:
        got, after = page(client, headers, job_id, next_cursor, limit)
        rows.extend(got)
        if not got:
            return rows, after
        next_cursor = after
    return rows, None


def test_results_page_through_finished_parts_while_the_job_runs(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a job of 60 records in parts of 20 lines, only part 0 run
    job_id, parts, ids = planned_job(client, headers, worker_settings, tmp_path, records=58)
    assert len(parts) == 3
    assert run_part(parts[0], worker_settings) == "done"

    # when: the results are paged through 7 lines at a time
    first, cursor = drain(client, headers, job_id, "", 7)

    # then: exactly part 0's good records, in input order, and a cursor to come back with
    assert [r["id"] for r in first] == ids[:20]  # the first broken line is line 25, in part 1
    assert all(len(r["embedding"]) == 384 for r in first)
    assert cursor is not None
    assert client.get(f"/v1/jobs/{job_id}/results", headers=headers).status_code == 409

    # when: the other parts run, then the job is finalized, and paging continues from the cursor
    assert run_part(parts[2], worker_settings) == "done"
    waiting, cursor_after_gap = page(client, headers, job_id, cursor, 7)
    assert waiting == [] and cursor_after_gap is not None  # part 1 is not done: nothing past it yet
    assert run_part(parts[1], worker_settings) == "done"
    assert finalize_job(job_id, worker_settings) == "succeeded"
    rest, end = drain(client, headers, job_id, cursor_after_gap, 7)

    # then: the remaining lines, no duplicates, and no cursor once the job is over and all was served
    assert [r["id"] for r in first + rest] == ids
    assert end is None
    whole = client.get(f"/v1/jobs/{job_id}/results", headers=headers)
    assert [json.loads(x)["id"] for x in whole.data.splitlines()] == ids

    # and: a dry run on the same model now estimates with the throughput its parts measured
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
    body = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": job["input_file"]}
    dry = client.post("/v1/jobs?dry_run=true", headers=headers, json=body).get_json()
    assert dry["throughput"]["source"] == "measured" and dry["throughput"]["tokens_per_second"] > 0
    assert dry["estimated_seconds"] == pytest.approx(
        dry["tokens"] / dry["throughput"]["tokens_per_second"], rel=0.01
    )


def test_cancelled_job_pages_every_finished_line(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a job whose parts 0 and 2 finished before a cancel
    job_id, parts, ids = planned_job(client, headers, worker_settings, tmp_path, records=58)
    assert run_part(parts[0], worker_settings) == "done"
    assert run_part(parts[2], worker_settings) == "done"
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
    assert run_part(parts[1], worker_settings) == "skipped"
    assert finalize_job(job_id, worker_settings) == "cancelled"

    # when: paged from the start with one big page
    rows, end = page(client, headers, job_id, "", 1000)

    # then: both finished parts' lines in input order, the skipped part left out, and no next cursor
    whole = [
        json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/results", headers=headers).data.splitlines()
    ]
    assert [r["id"] for r in rows] == [r["id"] for r in whole]
    assert rows[0]["id"] == ids[0] and rows[-1]["id"] == ids[-1] and len(rows) < len(ids)
    assert end is None


def test_bad_cursor_and_limit_are_refused(http: Http, worker_settings: Settings, tmp_path: Path) -> None:
    client, headers = http
    # given: a planned job
    job_id, _, _ = planned_job(client, headers, worker_settings, tmp_path, records=10)
    # when / then
    for query, code in (
        ("cursor=%%%", "invalid_cursor"),
        ("limit=0", "invalid_value"),
        ("limit=x", "invalid_value"),
    ):
        r = client.get(f"/v1/jobs/{job_id}/results?{query}", headers=headers)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == code, (query, r.data)


def test_client_follows_results_as_parts_finish(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    flask_client, headers = http
    key = headers["Authorization"].removeprefix("Bearer ")
    # given: a job with part 0 done, followed through the Python client
    job_id, parts, ids = planned_job(flask_client, headers, worker_settings, tmp_path, records=58)
    assert run_part(parts[0], worker_settings) == "done"
    transport = httpx.WSGITransport(app=flask_client.application)
    with Client("http://inferq.test", key, transport=transport) as client:
        lines = client.follow_results(job_id, poll=0.1, limit=8)
        # when: the first lines are read, then the rest of the job runs
        early = [next(lines)["id"] for _ in range(20)]
        for part in parts[1:]:
            assert run_part(part, worker_settings) == "done"
        assert finalize_job(job_id, worker_settings) == "succeeded"
        late = [r["id"] for r in lines]
    # then: every line once, in input order, and the generator ends with the job
    assert early + late == ids
