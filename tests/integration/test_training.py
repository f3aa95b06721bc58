"""Train jobs end to end with an in-process Celery worker on Postgres, Redis and moto S3."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from inferq.shared.db import session_scope
from inferq.shared.models import ModelVersion
from inferq.shared.settings import Settings
from tests.helpers.labelled_data import sentiment_rows, write_jsonl
from tests.helpers.tenant_http import Http

pytestmark = pytest.mark.integration

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
TENANT = "trainer"


# `worker_settings` (parts of 30 records), `http`, `tiny_base` and `training_worker`: the shared ones of
# tests/conftest.py, for TENANT.


@pytest.fixture
def tenant_name() -> str:
    return TENANT


def upload(client: FlaskClient, headers: dict[str, str], path: Path, purpose: str = "training") -> str:
    r = client.post(
        "/v1/files",
        headers=headers,
        data={"purpose": purpose, "file": (io.BytesIO(path.read_bytes()), path.name)},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def submit(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/v1/jobs", headers=headers, json=body)
    assert r.status_code == 202, r.get_json()
    return dict(r.get_json())


def wait_terminal(
    client: FlaskClient, headers: dict[str, str], job_id: str, timeout: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished in {timeout}s: {job}")


def events_of(client: FlaskClient, headers: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=headers).get_json()["data"])


def test_train_job_fine_tunes_registers_and_predicts(
    http: Http, training_worker: Any, tiny_base: str, tmp_path: Path
) -> None:
    client, headers = http
    # given: 80 labelled sentences and 2 bad lines
    path = write_jsonl(
        tmp_path / "train.jsonl",
        sentiment_rows(80),
        ['{"text": "no label here"}', '{"text": 5, "label": "pos"}'],
    )
    training = upload(client, headers, path)
    # when: a 2-epoch train job fine-tunes the tiny base
    job = submit(
        client,
        headers,
        type="train",
        task="text-classification",
        base_model="tiny-base",
        training_file=training,
        model_name="sentiment",
        hyperparameters={"epochs": 2, "learning_rate": 0.003, "batch_size": 8, "seed": 7},
    )
    assert job["status"] == "queued" and job["type"] == "train" and job["model"] == tiny_base
    done = wait_terminal(client, headers, job["id"])
    # then: it succeeded with a registered version and metrics of the right shape
    assert done["status"] == "succeeded", done
    assert done["result_model"] == "sentiment:1"
    assert done["progress"] == {"total": 82, "completed": 80, "failed": 2}
    metrics = done["metrics"]
    assert metrics["epochs"] == 2 and len(metrics["history"]) == 2
    for key in ("train_loss", "validation_loss", "accuracy", "macro_f1"):
        assert isinstance(metrics[key], float)
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["macro_f1"] <= 1
    assert set(metrics["per_class"]) == {"neg", "pos"}
    assert metrics["confusion_matrix"]["labels"] == ["neg", "pos"]
    epochs = [e for e in events_of(client, headers, job["id"]) if e["kind"] == "epoch"]
    assert [e["data"]["epoch"] for e in epochs] == [1, 2]
    errors = [
        json.loads(x) for x in client.get(f"/v1/jobs/{job['id']}/errors", headers=headers).data.splitlines()
    ]
    assert [(e["line"], e["error"]["code"]) for e in errors] == [(81, "missing_field"), (82, "invalid_type")]
    # and the registry shows the version with its provenance
    model = client.get("/v1/models/sentiment", headers=headers).get_json()
    (version,) = model["versions"]
    assert version["labels"] == ["neg", "pos"] and version["task"] == "text-classification"
    assert version["base_model"] == tiny_base and version["created_by_job"] == job["id"]
    assert version["metrics"]["accuracy"] == metrics["accuracy"]
    assert version["hyperparameters"]["epochs"] == 2 and len(version["weights_sha256"]) == 64
    # and a predict job runs on the new model by its bare name
    inputs = write_jsonl(
        tmp_path / "in.jsonl", [{"id": "a", "text": "great movie"}, {"id": "b", "text": "awful"}]
    )
    predict = submit(
        client,
        headers,
        type="predict",
        task="text-classification",
        model="sentiment",
        input_file=upload(client, headers, inputs, purpose="input"),
    )
    assert predict["model"] == "sentiment:1"
    assert wait_terminal(client, headers, predict["id"])["status"] == "succeeded"
    rows = [
        json.loads(x)
        for x in client.get(f"/v1/jobs/{predict['id']}/results", headers=headers).data.splitlines()
    ]
    assert [r["id"] for r in rows] == ["a", "b"] and all(r["label"] in ("pos", "neg") for r in rows)


def test_a_training_file_with_one_label_fails_with_a_clear_error(
    http: Http, training_worker: Any, tiny_base: str, tmp_path: Path
) -> None:
    client, headers = http
    # given: every record has the same label
    rows = [{"text": f"good movie {i}", "label": "pos"} for i in range(10)]
    training = upload(client, headers, write_jsonl(tmp_path / "one.jsonl", rows))
    # when
    job = submit(
        client,
        headers,
        type="train",
        task="text-classification",
        base_model="tiny-base",
        training_file=training,
        model_name="one",
    )
    done = wait_terminal(client, headers, job["id"])
    # then
    assert done["status"] == "failed"
    assert done["error"]["code"] == "too_few_labels"
    assert "only one label ('pos')" in done["error"]["message"]
    assert client.get("/v1/models/one", headers=headers).status_code == 404


def test_from_scratch_is_deterministic_given_the_seed(
    http: Http, training_worker: Any, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: Chinese and English labelled text
    rows = sentiment_rows(60) + [
        {"text": t, "label": label}
        for i in range(20)
        for t, label in (("这部电影非常好看 我很喜欢", "pos"), ("质量太差了 非常失望", "neg"))
        if i % 2 == (0 if label == "pos" else 1)
    ]
    training = upload(client, headers, write_jsonl(tmp_path / "zh.jsonl", rows))
    body = {
        "type": "train",
        "task": "text-classification",
        "base_model": None,
        "training_file": training,
        "model_name": "scratch",
        "hyperparameters": {"epochs": 2, "seed": 3},
    }
    # when: the same job runs twice
    first = wait_terminal(client, headers, submit(client, headers, **body)["id"])
    second = wait_terminal(client, headers, submit(client, headers, **body)["id"])
    # then: the same metrics and the same weights
    assert first["status"] == second["status"] == "succeeded", (first, second)
    assert first["model"] is None and first["params"]["family"] == "scratch-text"
    assert first["metrics"]["history"][-1]["train_loss"] == second["metrics"]["history"][-1]["train_loss"]
    with session_scope(worker_settings) as session:
        shas = (
            session.execute(select(ModelVersion.weights_sha256).order_by(ModelVersion.version))
            .scalars()
            .all()
        )
    assert len(shas) == 2 and shas[0] == shas[1]


def test_cancel_stops_training_within_a_batch(http: Http, training_worker: Any, tmp_path: Path) -> None:
    client, headers = http
    # given: a long training job that has finished an epoch
    training = upload(client, headers, write_jsonl(tmp_path / "t.jsonl", sentiment_rows(400)))
    job = submit(
        client,
        headers,
        type="train",
        task="text-classification",
        base_model=None,
        training_file=training,
        model_name="long",
        hyperparameters={"epochs": 100, "batch_size": 4},
    )
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "epoch" for e in events_of(client, headers, job["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # when
    asked = time.monotonic()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 202
    done = wait_terminal(client, headers, job["id"], timeout=60)
    # then: it stopped quickly, without a model
    assert done["status"] == "cancelled" and done["result_model"] is None
    assert time.monotonic() - asked < 30  # generous: the test machine is shared
    assert client.get("/v1/models/long", headers=headers).status_code == 404
