"""Duplicate ids in one input file: the first record with an id runs, each later one is a `duplicate_id`
error line with its `line`, whichever part it is in; `1` and `"1"` are one id, and a record without an id
has its line number as id. A retry child never runs a repeat again.

The planner, runner and finalizer are driven directly (no Celery worker), on Postgres, Redis and moto S3,
with parts of 4 records so that repeats span parts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from inferq.shared.db import session_scope
from inferq.shared.models import JobPart
from inferq.shared.settings import Settings
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.runner import part_ids_of, run_part
from tests.helpers.tenant_http import Http
from tests.integration.test_retry import events, jsonl, retry, run_job, submit, upload

pytestmark = pytest.mark.integration


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    """Parts of 4 records."""
    return make_worker_settings(INFERQ_PART_RECORDS="4")


@pytest.fixture
def tenant_name() -> str:
    return "dup-ids"


def text(n: int) -> str:
    return f"sentence number {n} about nothing in particular"


# (line, the line's JSON or raw text); parts of 4: lines 1-4, 5-8, 9-12
LINES: list[Any] = [
    {"id": "a", "text": text(1)},
    {"id": 1, "text": text(2)},
    {"text": text(3)},  # id "3"
    {"id": "b", "text": text(4)},
    {"id": "1", "text": text(5)},  # repeats line 2: 1 and "1" are one id
    {"id": 3, "text": text(6)},  # repeats line 3, whose id is its line number
    {"id": "a", "text": text(7)},  # repeats line 1, in another part
    '{"id": "broken", ',  # id "8": does not parse
    {"id": "8", "text": text(9)},  # repeats the broken line's id
    {"id": "c", "text": text(10)},
    {"id": "c", "text": text(11)},  # repeats line 10 in the same part
    {"text": text(12)},  # id "12"
]
RUN = ["a", "1", "3", "b", "c", "12"]
REPEATS = {5: "1", 6: "3", 7: "a", 9: "8", 11: "c"}


def input_bytes() -> bytes:
    return b"".join((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in LINES)


def test_repeated_ids_are_error_lines_across_parts(http: Http, worker_settings: Settings) -> None:
    client, headers = http
    # given: a file of 12 records in 3 parts whose ids repeat within and across parts
    job_id = submit(client, headers, "embedding", "minilm-l6", upload(client, headers, input_bytes()))

    # when: the job runs
    assert run_job(worker_settings, job_id) == "succeeded"

    # then: each id is in the output once, from its first record, in input order
    output = jsonl(client.get(f"/v1/jobs/{job_id}/results", headers=headers).data)
    assert [r["id"] for r in output] == RUN
    # and: each repeat is a duplicate_id error line with its line and id; the broken line keeps its code
    errors = jsonl(client.get(f"/v1/jobs/{job_id}/errors", headers=headers).data)
    dup = {e["line"]: e["id"] for e in errors if e["error"]["code"] == "duplicate_id"}
    assert dup == REPEATS
    assert [(e["line"], e["error"]["code"]) for e in errors if e["line"] == 8] == [(8, "invalid_json")]
    # and: the counters and the plan event say so
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
    assert job["progress"] == {"total": 12, "completed": len(RUN), "failed": len(REPEATS) + 1}
    planned = events(client, headers, job_id)["planned"]
    assert planned["data"]["duplicate_ids"] == len(REPEATS)
    with session_scope(worker_settings) as session:
        rows = session.query(JobPart).filter(JobPart.job_id == job_id).order_by(JobPart.index).all()
        assert [r.duplicates for r in rows] == [None, [4, 5, 6], [8, 10]]


def test_a_retry_child_never_runs_a_repeat(http: Http, worker_settings: Settings) -> None:
    client, headers = http
    # given: the same file; part 0 ran, then the job was cancelled
    parent = submit(client, headers, "embedding", "minilm-l6", upload(client, headers, input_bytes()))
    plan_job(parent, worker_settings)
    parts = part_ids_of(worker_settings, parent)
    assert run_part(parts[0], worker_settings) == "done"
    assert client.post(f"/v1/jobs/{parent}/cancel", headers=headers).status_code == 202
    assert finalize_job(parent, worker_settings) == "cancelled"

    # when: its cancelled records run again as a child, and the results are merged
    r = retry(client, headers, parent, {"only": "cancelled"})
    assert r.status_code == 202, r.get_json()
    child = r.get_json()["id"]
    assert run_job(worker_settings, child) == "succeeded"

    # then: the child ran only the never-run records that repeat no earlier id
    retry_input = events(client, headers, child)["retry_input"]["data"]
    assert (retry_input["records"], retry_input["unretryable"]) == (2, 6)  # 5 repeats, 1 broken line
    merged = jsonl(client.get(f"/v1/jobs/{parent}/results?merged=true", headers=headers).data)
    assert [r["id"] for r in merged] == RUN
