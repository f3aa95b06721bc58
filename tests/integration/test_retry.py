"""`POST /v1/jobs/{id}/retry` and `GET /v1/jobs/{id}/results?merged=true`: retry only what failed.

The planner, runner, finalizer and reconciler are driven directly (no Celery worker), on Postgres, Redis
and moto S3, with tiny random-weight models so that every part runs in well under a second.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.serving import make_server

from inferq.cli import main as cli
from inferq.client import Client
from inferq.shared.db import session_scope
from inferq.shared.models import Job, utcnow
from inferq.shared.settings import Settings
from inferq.shared.storage import get_storage
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.reconciler import reconcile
from inferq.worker.runner import part_ids_of, run_part
from tests.helpers.labelled_data import png_base64, stripe_rows
from tests.helpers.tenant_http import Http, register_model, tenant_headers, tenant_id
from tests.helpers.tiny_models import make_tiny_image_classifier, make_tiny_text_classifier

pytestmark = pytest.mark.integration

TENANT = "retrier"


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    """Parts of 4 records, so that a few records make several parts."""
    return make_worker_settings(INFERQ_PART_RECORDS="4")


@pytest.fixture
def tenant_name() -> str:
    return TENANT


@pytest.fixture
def served(http: Http) -> Iterator[str]:
    """The same app over real HTTP, for the CLI: its base URL."""
    server = make_server("127.0.0.1", 0, http[0].application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def upload(client: FlaskClient, headers: dict[str, str], data: bytes, name: str = "in.jsonl") -> str:
    r = client.post(
        "/v1/files",
        headers=headers,
        data={"purpose": "input", "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def submit(client: FlaskClient, headers: dict[str, str], task: str, model: str, file_id: str) -> str:
    body = {"type": "predict", "task": task, "model": model, "input_file": file_id}
    r = client.post("/v1/jobs", headers=headers, json=body)
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def run_job(settings: Settings, job_id: str) -> str:
    """Plan, run every part and finalize: the job's end state."""
    plan_job(job_id, settings)
    for part_id in part_ids_of(settings, job_id):
        assert run_part(part_id, settings) in ("done", "failed")
    return finalize_job(job_id, settings)


def retry(client: FlaskClient, headers: dict[str, str], job_id: str, body: Any, **extra: str) -> Any:
    return client.post(f"/v1/jobs/{job_id}/retry", headers={**headers, **extra}, json=body)


def jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def events(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict[str, dict[str, Any]]:
    """The job's events by kind (the last of each kind)."""
    body = client.get(f"/v1/jobs/{job_id}/events", headers=headers).get_json()
    return {e["kind"]: e for e in body["data"]}


def png(label: str) -> bytes:
    pixels = [[230 if ((r if label == "h" else c) % 2 == 0) else 20 for c in range(8)] for r in range(8)]
    return base64.b64decode(png_base64(pixels))


def test_retry_errored_after_the_missing_images_arrive_merges_in_input_order(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    model = register_model(
        worker_settings,
        TENANT,
        "tiny-vit",
        make_tiny_image_classifier(tmp_path / "vit", ["h", "v"], "vit"),
        "image-classification",
    )
    # given: 10 records over 3 parts: three image_keys not uploaded yet (one record without an id, so its
    # id is its line number), a line that is not JSON, a corrupt image, and a blank line
    good = [r["image"] for r in stripe_rows(5)]
    lines = [
        {"id": "a0", "image": good[0]},
        {"image_key": "images/late-1.png"},  # line 2: id "2"
        None,  # line 3: blank
        {"id": "a2", "image": good[1]},
        "not json {",  # line 5: cannot be retried
        {"id": "late-3", "image_key": "images/late-3.png"},
        {"id": "a5", "image": good[2]},
        {"id": "a6", "image": good[3]},
        {"id": "late-7", "image_key": "images/late-7.png"},
        {"id": 8, "image": good[4]},
        {"id": "corrupt", "image": "%%%"},  # fails again in the retry
    ]
    data = "\n".join("" if x is None else x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    parent = submit(client, headers, "image-classification", model, upload(client, headers, data.encode()))
    assert run_job(worker_settings, parent) == "succeeded"
    job = client.get(f"/v1/jobs/{parent}", headers=headers).get_json()
    assert job["progress"] == {"total": 10, "completed": 5, "failed": 5}
    assert job["parent_job"] is None and job["retry_of"] is None
    errors = jsonl(client.get(f"/v1/jobs/{parent}/errors", headers=headers).data)
    assert [(e["id"], e["line"], e["index"]) for e in errors] == [
        ("2", 2, 1),
        ("5", 5, 3),
        ("late-3", 6, 4),
        ("late-7", 9, 7),
        ("corrupt", 11, 9),
    ]

    # when: the images are uploaded, and the errored records are retried (with an Idempotency-Key)
    storage = get_storage(worker_settings)
    for i, label in ((1, "h"), (3, "v"), (7, "h")):
        storage.put_bytes(f"t/{tenant_id(worker_settings, TENANT)}/images/late-{i}.png", png(label))
    r = retry(client, headers, parent, {"only": "errored"}, **{"Idempotency-Key": "retry-1"})

    # then: 202 with a queued child, and the same key answers the same child
    assert r.status_code == 202, r.get_json()
    child = r.get_json()
    assert child["parent_job"] == parent and child["retry_of"] == "errored"
    assert child["status"] == "queued" and child["type"] == "predict" and child["model"] == model
    again = retry(client, headers, parent, {"only": "errored"}, **{"Idempotency-Key": "retry-1"})
    assert again.status_code == 202 and again.get_json()["id"] == child["id"]
    other = retry(client, headers, parent, {"only": "expired"}, **{"Idempotency-Key": "retry-1"})
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_conflict"
    retried = events(client, headers, parent)["retried"]
    assert retried["data"]["child_job"] == child["id"] and child["id"] in retried["message"]

    # and: merged results wait for the child
    r = client.get(f"/v1/jobs/{parent}/results?merged=true", headers=headers)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "retry_not_finished"

    # when: the child runs
    assert run_job(worker_settings, child["id"]) == "succeeded"

    # then: its input holds the four retryable records with their original ids; its events say so
    done = client.get(f"/v1/jobs/{child['id']}", headers=headers).get_json()
    assert done["progress"] == {"total": 4, "completed": 3, "failed": 1}
    content = client.get(f"/v1/files/{done['input_file']}/content", headers=headers).data
    assert [x["id"] for x in jsonl(content)] == ["2", "late-3", "late-7", "corrupt"]
    child_events = events(client, headers, child["id"])
    assert child_events["retry_of"]["data"]["parent_job"] == parent
    assert child_events["retry_input"]["data"]["records"] == 4
    assert child_events["retry_input"]["data"]["unretryable"] == 1
    assert "cannot be retried" in child_events["retry_input"]["message"]

    # and: the merged results are complete, in input order, with the original ids; the corrupt image
    # (failed again) and the broken line stay missing
    r = client.get(f"/v1/jobs/{parent}/results?merged=true", headers=headers)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/jsonl; charset=utf-8"
    assert r.headers["X-Retry-Jobs"] == child["id"]
    merged = jsonl(r.data)
    assert [x["id"] for x in merged] == ["a0", "2", "a2", "late-3", "a5", "a6", "late-7", "8"]
    assert all(set(x["scores"]) == {"h", "v"} for x in merged)
    retried_lines = jsonl(client.get(f"/v1/jobs/{child['id']}/results", headers=headers).data)
    assert [x for x in merged if x["id"] in ("2", "late-3", "late-7")] == retried_lines
    plain = jsonl(client.get(f"/v1/jobs/{parent}/results", headers=headers).data)
    assert [x["id"] for x in plain] == ["a0", "a2", "a5", "a6", "8"]
    # and: merged on a job without retries is its plain output
    r = client.get(f"/v1/jobs/{child['id']}/results?merged=true", headers=headers)
    assert r.status_code == 200 and jsonl(r.data) == retried_lines

    # when: the record that failed again is retried from the child (a retry of a retry)
    grandchild = retry(client, headers, child["id"], {"only": "errored"}).get_json()
    assert run_job(worker_settings, grandchild["id"]) == "succeeded"
    # then: it fails again, and the parent's merged view still reads through both levels
    merged_again = jsonl(client.get(f"/v1/jobs/{parent}/results?merged=true", headers=headers).data)
    assert merged_again == merged

    # and: the Python client reads the same merged lines
    transport = httpx.WSGITransport(app=client.application)
    key = headers["Authorization"].removeprefix("Bearer ")
    with Client("http://inferq.test", key, transport=transport) as api:
        assert list(api.iter_results(parent, merged=True)) == merged
        assert api.get(child["id"]).parent_job == parent


def tiny_text_model(settings: Settings, tmp_path: Path) -> str:
    return register_model(
        settings,
        TENANT,
        "tiny-text",
        make_tiny_text_classifier(tmp_path / "text", ["neg", "pos"]),
        "text-classification",
    )


def text_lines(n: int, broken: set[int]) -> tuple[bytes, list[str]]:
    """n JSONL lines (records without an id on every third line), `broken` 1-based lines not JSON; the
    ids the parseable records have, in order."""
    lines, ids = [], []
    for line in range(1, n + 1):
        if line in broken:
            lines.append("{broken")
        elif line % 3 == 0:
            lines.append(json.dumps({"text": f"the movie {line} was good"}))
            ids.append(str(line))
        else:
            lines.append(json.dumps({"id": f"t{line}", "text": f"the film {line} was bad"}))
            ids.append(f"t{line}")
    return ("\n".join(lines) + "\n").encode(), ids


def test_retry_cancelled_runs_the_parts_that_never_ran(
    http: Http, served: str, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    runner = CliRunner(env={"INFERQ_URL": served, "INFERQ_API_KEY": headers["Authorization"][7:]})
    model = tiny_text_model(worker_settings, tmp_path)
    # given: 14 lines in 4 parts (one broken line in part 2); parts 0 and 3 finished before a cancel
    data, ids = text_lines(14, broken={10})
    parent = submit(client, headers, "text-classification", model, upload(client, headers, data))
    plan_job(parent, worker_settings)
    parts = part_ids_of(worker_settings, parent)
    assert len(parts) == 4
    assert run_part(parts[0], worker_settings) == "done"
    assert run_part(parts[3], worker_settings) == "done"
    assert client.post(f"/v1/jobs/{parent}/cancel", headers=headers).status_code == 202
    assert [run_part(p, worker_settings) for p in parts[1:3]] == ["skipped", "skipped"]
    assert finalize_job(parent, worker_settings) == "cancelled"

    # when: only=expired is asked of a cancelled job, then only=cancelled
    r = retry(client, headers, parent, {"only": "expired"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "job_not_expired"
    made = runner.invoke(cli, ["retry", parent, "--only", "cancelled"])
    assert made.exit_code == 0, made.output
    child = client.get(f"/v1/jobs/{made.stdout.strip()}", headers=headers).get_json()
    assert child["retry_of"] == "cancelled" and child["parent_job"] == parent
    assert run_job(worker_settings, child["id"]) == "succeeded"

    # then: the child ran the 8 lines of parts 1 and 2 but the broken one; merged holds every record
    done = client.get(f"/v1/jobs/{child['id']}", headers=headers).get_json()
    assert done["progress"] == {"total": 7, "completed": 7, "failed": 0}
    assert events(client, headers, child["id"])["retry_input"]["data"]["unretryable"] == 1
    merged = jsonl(client.get(f"/v1/jobs/{parent}/results?merged=true", headers=headers).data)
    assert [x["id"] for x in merged] == ids
    assert all(x["label"] in ("neg", "pos") for x in merged)
    downloaded = runner.invoke(cli, ["download", parent, "--merged", "-o", "-"])
    assert downloaded.exit_code == 0 and jsonl(downloaded.stdout_bytes) == merged

    # and: the child has nothing left to retry
    r = retry(client, headers, child["id"], {"only": "errored"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "nothing_to_retry"
    r = retry(client, headers, child["id"], {"only": "cancelled"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "job_not_cancelled"


def test_retry_expired_before_it_was_planned_runs_the_whole_csv(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    model = tiny_text_model(worker_settings, tmp_path)
    # given: a CSV job (two rows without an id: their ids are their line numbers, the header is line 1)
    # whose window passed before it was planned
    data = b"id,text\nc1,good film\n,bad film\nc3,great food\n,slow service\nc5,the book\n"
    parent = submit(client, headers, "text-classification", model, upload(client, headers, data, "in.csv"))
    with session_scope(worker_settings) as session:
        session.execute(
            update(Job).where(Job.id == parent).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert reconcile(worker_settings).expired == 1
    assert finalize_job(parent, worker_settings) == "expired"

    # when
    r = retry(client, headers, parent, {"only": "expired", "completion_window": "2h"})
    assert r.status_code == 202, r.get_json()
    child = r.get_json()
    assert run_job(worker_settings, child["id"]) == "succeeded"

    # then: every record ran, with its original id
    merged = jsonl(client.get(f"/v1/jobs/{parent}/results?merged=true", headers=headers).data)
    assert [x["id"] for x in merged] == ["c1", "3", "c3", "5", "c5"]
    assert client.get(f"/v1/jobs/{parent}/results", headers=headers).data == b""


def test_retry_refuses_what_it_cannot_do(http: Http, worker_settings: Settings, tmp_path: Path) -> None:
    client, headers = http
    model = tiny_text_model(worker_settings, tmp_path)
    data, _ = text_lines(3, broken=set())
    file_id = upload(client, headers, data)
    running = submit(client, headers, "text-classification", model, file_id)
    finished = submit(client, headers, "text-classification", model, file_id)
    assert run_job(worker_settings, finished) == "succeeded"
    other = tenant_headers(worker_settings, "someone-else")

    cases: list[tuple[str, dict[str, str], Any, int, str]] = [
        # the request itself
        (finished, headers, {"only": "everything"}, 400, "invalid_value"),
        (finished, headers, {"only": 3}, 400, "invalid_value"),
        (finished, headers, {}, 400, "field_required"),
        (finished, headers, {"only": "errored", "model": "x"}, 400, "unknown_field"),
        (finished, headers, ["errored"], 400, "invalid_json"),
        (finished, headers, {"only": "errored", "completion_window": "soon"}, 400, "invalid_value"),
        # whose job
        (finished, other, {"only": "errored"}, 404, "job_not_found"),
        ("job_doesnotexist", headers, {"only": "errored"}, 404, "job_not_found"),
        # the job's state
        (running, headers, {"only": "errored"}, 409, "job_not_finished"),
        (finished, headers, {"only": "errored"}, 409, "nothing_to_retry"),
        (finished, headers, {"only": "cancelled"}, 409, "job_not_cancelled"),
    ]
    for job_id, who, body, status, code in cases:
        r = retry(client, who, job_id, body)
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code), (job_id, body, r.get_json())
        assert set(r.get_json()["error"]) == {"code", "message", "field"}

    # and: merged must be a boolean, and comes whole
    for query in ("merged=maybe", "merged=true&limit=10"):
        r = client.get(f"/v1/jobs/{finished}/results?{query}", headers=headers)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_value", query
    # and: merged=false, or merged on a job without retries, is the plain output
    plain = client.get(f"/v1/jobs/{finished}/results", headers=headers).data
    for query in ("merged=false", "merged=true"):
        assert client.get(f"/v1/jobs/{finished}/results?{query}", headers=headers).data == plain
    r = client.get(f"/v1/jobs/{running}/results?merged=true", headers=headers)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "job_not_finished"
