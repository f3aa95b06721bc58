"""`max_length` is what the model can take: from its special tokens + 1 to its positions, checked at submit
(predict, dry run, evaluate, fine-tuning) from the model's recorded limits, and clamped by the worker so a
job stored with a value outside them still runs every record."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from inferq.shared.db import session_scope
from inferq.shared.models import Job, ModelVersion
from inferq.shared.settings import Settings
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.runner import part_ids_of, run_part
from tests.helpers.tenant_http import Http

pytestmark = pytest.mark.integration

# minilm-l6: [CLS] … [SEP] around each text, 512 positions.
MINILM_MIN, MINILM_MAX = 3, 512
# The tiny classifier of tests/helpers/tiny_models.py: BERT's two special tokens, 64 positions.
TINY_MIN, TINY_MAX = 3, 64


def upload(client: FlaskClient, headers: dict[str, str], data: bytes, purpose: str = "input") -> str:
    form = {"purpose": purpose, "file": (io.BytesIO(data), "in.jsonl")}
    r = client.post("/v1/files", headers=headers, data=form, content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def error(r: Any) -> dict[str, Any]:
    assert r.status_code == 400, (r.status_code, r.get_json())
    return dict(r.get_json()["error"])


@pytest.mark.parametrize("dry_run", [False, True], ids=["submit", "dry-run"])
def test_a_max_length_the_builtin_model_cannot_take_is_400_naming_its_bounds(
    http: Http, dry_run: bool
) -> None:
    client, headers = http
    # given an input file for the built-in minilm-l6
    file_id = upload(client, headers, jsonl([{"text": "hello world"}]))
    path = "/v1/jobs?dry_run=true" if dry_run else "/v1/jobs"

    def post(max_length: int) -> Any:
        body = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": file_id}
        return client.post(path, headers=headers, json={**body, "params": {"max_length": max_length}})

    for bad in (1, MINILM_MIN - 1, MINILM_MAX + 1, 8192):
        # when a max_length below its special tokens + 1 or above its positions is asked for
        e = error(post(bad))

        # then it is a 400 on params.max_length that names both bounds
        assert e["field"] == "params.max_length" and e["code"] == "invalid_value"
        assert f"from {MINILM_MIN} to {MINILM_MAX}" in e["message"], e["message"]

    # and the bounds themselves are accepted
    for good in (MINILM_MIN, MINILM_MAX):
        assert post(good).status_code == (200 if dry_run else 202)


def test_a_tenant_models_limits_are_recorded_at_registration_and_checked(
    http: Http, tiny_base: str, worker_settings: Settings
) -> None:
    client, headers = http
    # given a tiny classifier registered for the tenant (64 positions), and a labelled file
    with session_scope(worker_settings) as session:
        config = session.execute(select(ModelVersion.config)).scalar_one()
    labelled = jsonl([{"text": f"text {i}", "label": "xy"[i % 2]} for i in range(4)])
    file_id = upload(client, headers, labelled)
    training_id = upload(client, headers, labelled, purpose="training")

    # when it is predicted, evaluated and fine-tuned with lengths it cannot take
    common = {"task": "text-classification", "model": tiny_base, "input_file": file_id}
    answers = {
        "predict": client.post(
            "/v1/jobs",
            headers=headers,
            json={"type": "predict", **common, "params": {"max_length": TINY_MAX + 1}},
        ),
        "evaluate": client.post(
            "/v1/jobs", headers=headers, json={"type": "evaluate", **common, "params": {"max_length": 1}}
        ),
        "train": client.post(
            "/v1/jobs",
            headers=headers,
            json={
                "type": "train",
                "task": "text-classification",
                "base_model": tiny_base,
                "training_file": training_id,
                "model_name": "tuned",
                "hyperparameters": {"max_length": 128},
            },
        ),
    }

    # then the limits were read from its files at registration
    assert config["max_positions"] == TINY_MAX and config["special_tokens"] == 2
    # and each submit is a 400 naming the model's bounds
    for kind, r in answers.items():
        e = error(r)
        assert f"from {TINY_MIN} to {TINY_MAX}" in e["message"], (kind, e)
        assert e["field"] == ("hyperparameters.max_length" if kind == "train" else "params.max_length")


def test_a_job_stored_with_max_length_1_runs_every_record(
    http: Http, tiny_base: str, worker_settings: Settings
) -> None:
    client, headers = http
    # given a job over texts longer than the model's 64 positions, stored with max_length 1 (as a job
    # submitted before the API checked it would be)
    texts = [" ".join(["good movie"] * 80) + f" {i}" for i in range(5)]
    file_id = upload(client, headers, jsonl([{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]))
    body = {"type": "predict", "task": "text-classification", "model": tiny_base, "input_file": file_id}
    r = client.post("/v1/jobs", headers=headers, json=body)
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    with session_scope(worker_settings) as session:
        session.execute(update(Job).where(Job.id == job_id).values(params={"max_length": 1}))

    # when the worker plans, runs and finalizes it
    plan_job(job_id, worker_settings)
    outcomes = [run_part(part_id, worker_settings) for part_id in part_ids_of(worker_settings, job_id)]
    finalize_job(job_id, worker_settings)

    # then every record has a prediction and none a processing_error
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
    assert set(outcomes) == {"done"}
    assert job["status"] == "succeeded", job
    assert job["progress"]["completed"] == 5 and job["progress"]["failed"] == 0, job
    rows = [
        json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/results", headers=headers).data.splitlines()
    ]
    assert [row["id"] for row in rows] == [f"r{i}" for i in range(5)]
    assert all(row["label"] in {"x", "y"} for row in rows)
