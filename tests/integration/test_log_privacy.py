"""Logs never contain record contents: a real job over records carrying a sentinel, good ones and bad
ones, run by a Celery worker in-process on Postgres, Redis and moto S3, with every logger at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inferq.shared.db import session_scope
from inferq.shared.models import ResultCache, Tenant
from inferq.shared.settings import Settings
from inferq.shared.tenants import create_tenant_key
from tests.helpers.tenant_http import tenant_http
from tests.helpers.worker_env import in_process_worker

pytestmark = pytest.mark.integration

SENTINEL = "PRIVATE-8c1f2e-SENTINEL"
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


def records() -> bytes:
    """Good records with the sentinel in their text and id, and bad ones that carry it too."""
    lines = [
        json.dumps({"id": f"ok-{i}", "text": f"sentence {i} mentions {SENTINEL} once"}) for i in range(8)
    ]
    lines += [
        json.dumps({"id": f"{SENTINEL}-id", "text": "a fine sentence"}),
        '{"id": "bad-json", "text": "' + SENTINEL + " never closed",  # does not parse
        json.dumps({"id": "bad-type", "text": 12, "note": SENTINEL}),  # wrong type
        json.dumps({"id": f"{SENTINEL}-bad", "text": None}),  # its id is in the error file
        json.dumps({"id": "bad-field", "body": SENTINEL}),  # lacks its field
        json.dumps([SENTINEL]),  # not an object
        SENTINEL,  # not JSON at all
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    return make_worker_settings(INFERQ_PART_RECORDS="4")


def leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured log line (message, arguments and traceback formatted) that holds the sentinel."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    found = []
    for record in caplog.records:
        text = formatter.format(record)
        if SENTINEL in text:
            found.append(text[:500])
    return found


def test_no_log_line_holds_record_contents(
    worker_settings: Settings, embedder_settings: Settings, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every library logger under it too
    client, headers = tenant_http(embedder_settings, "logs")  # its embeddings go to a real embedder

    # given: an upload whose records carry the sentinel
    r = client.post(
        "/v1/files",
        headers=headers,
        data={"purpose": "input", "file": (io.BytesIO(records()), "in.jsonl")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    file_id = r.get_json()["id"]
    body = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": file_id}

    # when: it is dry-run, embedded synchronously, and run as a job by a real worker
    assert client.post("/v1/jobs?dry_run=true", headers=headers, json=body).status_code == 200
    r = client.post("/v1/embeddings", headers=headers, json={"model": "minilm-l6", "input": [SENTINEL]})
    assert r.status_code == 200, r.get_json()
    with in_process_worker(worker_settings, loglevel="DEBUG"):  # it sets the root logger's level to this
        caplog.set_level(logging.DEBUG)
        job_id = client.post("/v1/jobs", headers=headers, json=body).get_json()["id"]
        job = wait_terminal(client, headers, job_id)
    # and: its results and errors are read
    results = client.get(f"/v1/jobs/{job_id}/results", headers=headers).data
    errors = client.get(f"/v1/jobs/{job_id}/errors", headers=headers).data

    # then: the job ran over the sentinel records, good and bad
    assert job["status"] == "succeeded", job
    assert job["progress"]["completed"] == 9 and job["progress"]["failed"] == 6, job["progress"]
    assert SENTINEL.encode() in results
    assert len(errors.splitlines()) == 6 and SENTINEL.encode() in errors
    # and: plenty was logged, none of it the records' contents
    assert len(caplog.records) > 50
    assert leaks(caplog) == []
    # and: neither did the embedder process log them
    assert SENTINEL not in (tmp_path / "embedder.log").read_text(errors="replace")


def wait_terminal(client: Any, headers: dict[str, str], job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
        if job["status"] in TERMINAL:
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end in {timeout}s")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_database_errors_do_not_show_the_values_they_were_given(
    backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a cached result whose text holds the sentinel, inserted twice (a unique-key conflict)
    settings: Settings = request.getfixturevalue(
        "embedded_settings" if backend == "sqlite" else "s3_settings"
    )
    caplog.set_level(logging.DEBUG)
    with session_scope(settings) as session:
        tenant = session.execute(select(Tenant.id)).scalar() or _tenant(session)
    row = {"tenant_id": tenant, "key": "k" * 64, "result": json.dumps({"label": SENTINEL})}
    with session_scope(settings) as session:
        session.add(ResultCache(**row))

    # when: the same row goes in again
    with pytest.raises(IntegrityError) as e, session_scope(settings) as session:
        session.add(ResultCache(**row))

    # then: neither the error (what a log line or a traceback would show) nor any log has the values
    assert SENTINEL not in str(e.value)
    assert leaks(caplog) == []


def _tenant(session: Session) -> str:
    create_tenant_key(session, "db-errors")
    return str(session.execute(select(Tenant.id)).scalar_one())
