"""Plan → run parts → finalize with a real Celery worker in-process, on Postgres, Redis and moto S3."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select

from inferq.shared.db import session_scope
from inferq.shared.models import Job, JobEvent, JobPart
from inferq.shared.settings import Settings, get_settings
from inferq.worker.reconciler import reconcile
from tests.e2e.inputs import reference_embeddings, write_mixed_input
from tests.helpers.tenant_http import Http, register_model
from tests.helpers.tiny_models import make_tiny_text_classifier

pytestmark = pytest.mark.integration

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


# `worker_settings` (parts of 30 records), `http` and `celery_worker`: the shared ones of tests/conftest.py.


@pytest.fixture
def tenant_name() -> str:
    return "pipeline"


def upload(client: FlaskClient, headers: dict[str, str], path: Path) -> str:
    r = client.post(
        "/v1/files",
        headers=headers,
        data={"purpose": "input", "file": (io.BytesIO(path.read_bytes()), path.name)},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def submit(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/v1/jobs", headers=headers, json={"type": "predict", **body})
    assert r.status_code == 202, r.get_json()
    return dict(r.get_json())


def wait_terminal(
    client: FlaskClient, headers: dict[str, str], job_id: str, timeout: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen_completed = [0]
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
        assert job["progress"]["completed"] >= seen_completed[-1], "progress went backwards"
        seen_completed.append(job["progress"]["completed"])
        if job["status"] in TERMINAL:
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not finished in {timeout}s: {job}")


def test_embedding_job_runs_every_part_once_in_input_order(
    http: Http, celery_worker: Any, tmp_path: Path
) -> None:
    client, headers = http
    # given: 150 real sentences with a broken line every 15 lines, cut into parts of 30
    path, texts, bad_lines = write_mixed_input(tmp_path / "in.jsonl", records=150, broken_every=15)
    file_id = upload(client, headers, path)
    # when
    job = submit(client, headers, task="embedding", model="minilm-l6", input_file=file_id)
    done = wait_terminal(client, headers, job["id"])
    # then: the job succeeded with every record accounted for
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"total": 160, "completed": 150, "failed": 10}
    assert done["model"] == "minilm-l6:1"
    out = client.get(f"/v1/jobs/{job['id']}/results", headers=headers)
    assert out.status_code == 200 and out.headers["Content-Type"].startswith("application/jsonl")
    rows = [json.loads(line) for line in out.data.decode().splitlines()]
    assert [r["id"] for r in rows] == [t[0] for t in texts]
    want = reference_embeddings([t[1] for t in texts])
    got = [r["embedding"] for r in rows]
    assert (
        min(sum(a * b for a, b in zip(g, w, strict=True)) for g, w in zip(got, want, strict=True)) >= 0.9999
    )
    errors = [
        json.loads(line)
        for line in client.get(f"/v1/jobs/{job['id']}/errors", headers=headers).data.splitlines()
    ]
    assert [e["line"] for e in errors] == bad_lines
    assert {e["error"]["code"] for e in errors} <= {
        "invalid_json",
        "missing_field",
        "invalid_type",
        "not_an_object",
    }
    # and: the parts and the job agree
    with session_scope(get_settings()) as session:
        parts = (
            session.execute(select(JobPart).where(JobPart.job_id == job["id"]).order_by(JobPart.index))
            .scalars()
            .all()
        )
        assert all(p.status == "done" for p in parts)
        assert sum(p.completed for p in parts) == 150 and sum(p.failed for p in parts) == 10
        kinds = [
            e.kind
            for e in session.execute(
                select(JobEvent).where(JobEvent.job_id == job["id"]).order_by(JobEvent.id)
            ).scalars()
        ]
    assert kinds[0] == "state" and "planned" in kinds and kinds.count("part_done") == len(parts)


def test_text_classification_with_an_imported_model(
    http: Http,
    celery_worker: Any,
    worker_settings: Settings,
    tmp_path: Path,
) -> None:
    client, headers = http
    # given: a tiny random-weight classifier registered for the tenant
    folder = make_tiny_text_classifier(tmp_path / "clf", ["neg", "neu", "pos"])
    ref = register_model(worker_settings, "pipeline", "sentiment", folder, "text-classification")
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": f"sentence number {i} is fine"}) + "\n" for i in range(40)))
    file_id = upload(client, headers, path)
    # when
    job = submit(
        client,
        headers,
        task="text-classification",
        model="sentiment",
        input_file=file_id,
        params={"top_k": 2},
    )
    done = wait_terminal(client, headers, job["id"])
    # then
    assert done["status"] == "succeeded" and done["model"] == ref == "sentiment:1"
    rows = [
        json.loads(x) for x in client.get(f"/v1/jobs/{job['id']}/results", headers=headers).data.splitlines()
    ]
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 41)]
    for r in rows:
        assert r["label"] in {"neg", "neu", "pos"} and len(r["scores"]) == 2
        assert r["score"] == max(r["scores"].values())


def test_cancel_keeps_finished_parts_and_skips_the_rest(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a planned job whose first part is done before a cancel arrives
    path, texts, _ = write_mixed_input(tmp_path / "in.jsonl", records=120, broken_every=1000)
    file_id = upload(client, headers, path)
    job = submit(client, headers, task="embedding", model="minilm-l6", input_file=file_id)
    from inferq.worker.finalizer import finalize_job
    from inferq.worker.planner import plan_job
    from inferq.worker.runner import part_ids_of, run_part

    plan_job(job["id"], worker_settings)
    parts = part_ids_of(worker_settings, job["id"])
    assert len(parts) == 4
    assert run_part(parts[0], worker_settings) == "done"
    # when
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert r.status_code == 202 and r.get_json()["status"] == "cancelling"
    assert run_part(parts[1], worker_settings) == "skipped"
    assert finalize_job(job["id"], worker_settings) == "cancelled"
    # then: the finished part's lines are downloadable, in order, and a second cancel is refused
    done = client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()
    assert done["status"] == "cancelled" and done["progress"]["completed"] == 30
    rows = [
        json.loads(x) for x in client.get(f"/v1/jobs/{job['id']}/results", headers=headers).data.splitlines()
    ]
    assert [r["id"] for r in rows] == [t[0] for t in texts[:30]]
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 409


def test_duplicate_messages_do_nothing_and_lost_messages_are_resent(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    path, _, _ = write_mixed_input(tmp_path / "in.jsonl", records=60, broken_every=1000)
    job = submit(
        client, headers, task="embedding", model="minilm-l6", input_file=upload(client, headers, path)
    )
    from inferq.worker.finalizer import finalize_job
    from inferq.worker.planner import plan_job
    from inferq.worker.runner import part_ids_of, run_part

    # given: a job planned twice (duplicate plan message) → one set of parts
    plan_job(job["id"], worker_settings)
    plan_job(job["id"], worker_settings)
    parts = part_ids_of(worker_settings, job["id"])
    assert len(parts) == 2
    # when: the broker loses every message (Redis flushed) and the reconciler runs
    redis.Redis.from_url(worker_settings.broker_url).flushdb()
    report = reconcile(worker_settings, resend_after=0)
    # then: both parts were re-sent from SQL
    assert report.parts == 2
    # and: a part delivered twice runs once
    assert run_part(parts[0], worker_settings) == "done"
    assert run_part(parts[0], worker_settings) == "skipped"
    assert run_part(parts[1], worker_settings) == "done"
    assert finalize_job(job["id"], worker_settings) == "succeeded"
    assert finalize_job(job["id"], worker_settings) == "succeeded"
    with session_scope(worker_settings) as session:
        j = session.get(Job, job["id"])
        assert j is not None and (j.completed, j.failed, j.parts_done) == (60, 0, 2)
        files = session.execute(
            select(func.count()).select_from(JobPart).where(JobPart.job_id == job["id"])
        ).scalar()
        assert files == 2
