"""Train and evaluate submits: everything wrong is refused at once, nothing is created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from inferq.shared.db import session_scope
from inferq.shared.errors import InvalidRequest
from inferq.shared.models import Job, JobPart
from inferq.shared.registry import check_folder
from tests.helpers.api_client import ApiClient
from tests.helpers.tiny_models import make_tiny_text_classifier

pytestmark = pytest.mark.integration

LABELLED = b'{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'
UNLABELLED = b'{"text": "good"}\n'


@pytest.fixture
def tenant(api: ApiClient) -> dict[str, str]:
    return api.headers_for("acme")


@pytest.fixture
def training_file(api: ApiClient, tenant: dict[str, str]) -> str:
    return str(api.upload(tenant, LABELLED, filename="train.jsonl", purpose="training").get_json()["id"])


def train_body(training_file: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "train",
        "task": "text-classification",
        "training_file": training_file,
        "model_name": "sentiment",
        **extra,
    }


def test_a_train_job_is_queued_with_one_part_and_resolved_defaults(
    api: ApiClient, tenant: dict[str, str], training_file: str
) -> None:
    # when
    r = api.submit(tenant, **train_body(training_file, hyperparameters={"epochs": 1}))
    # then: the default base, every hyperparameter resolved, one part covering the file
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["type"] == "train" and job["status"] == "queued" and job["model"] == "minilm-l6:1"
    assert job["params"]["hyperparameters"] == {
        "epochs": 1,
        "learning_rate": 5e-5,
        "batch_size": 32,
        "max_length": 128,
        "seed": 42,
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
    }
    assert job["progress"]["total"] == 2
    with session_scope(api.settings) as session:
        parts = session.execute(select(JobPart).where(JobPart.job_id == job["id"])).scalars().all()
        assert [(p.index, p.records, p.status) for p in parts] == [(0, 2, "queued")]


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"task": "embedding"}, 400, "invalid_value", "task"),
        ({"model_name": "Bad Name"}, 400, "invalid_value", "model_name"),
        ({"model_name": "minilm-l6"}, 400, "invalid_value", "model_name"),
        ({"hyperparameters": {"epochs": 0}}, 400, "invalid_value", "hyperparameters.epochs"),
        ({"hyperparameters": {"learning_rate": 2.0}}, 400, "invalid_value", "hyperparameters.learning_rate"),
        ({"hyperparameters": {"batch_size": True}}, 400, "invalid_type", "hyperparameters.batch_size"),
        ({"hyperparameters": {"warmup_ratio": 0.9}}, 400, "invalid_value", "hyperparameters.warmup_ratio"),
        ({"hyperparameters": {"momentum": 0.9}}, 400, "unknown_field", "hyperparameters.momentum"),
        ({"hyperparameters": {"image_size": 32}}, 400, "unknown_field", "hyperparameters.image_size"),
        ({"base_model": "nope"}, 404, "model_not_found", "base_model"),
        ({"base_model": "cnn-small"}, 404, "model_not_found", "base_model"),
        ({"validation_file": "file_missing"}, 404, "file_not_found", "validation_file"),
        ({"training_file": "file_missing"}, 404, "file_not_found", "training_file"),
        ({"colour": "red"}, 400, "unknown_field", "colour"),
        ({"model": "minilm-l6"}, 400, "unknown_field", "model"),
    ],
)
def test_bad_train_bodies_are_refused(
    api: ApiClient,
    tenant: dict[str, str],
    training_file: str,
    change: dict[str, Any],
    status: int,
    code: str,
    field: str,
) -> None:
    # when
    r = api.submit(tenant, **{**train_body(training_file), **change})
    # then
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"]["code"] == code
    assert r.get_json()["error"]["field"] == field
    with session_scope(api.settings) as session:
        assert session.execute(select(func.count()).select_from(Job)).scalar_one() == 0


def test_files_without_labels_or_of_another_purpose_are_refused(
    api: ApiClient, tenant: dict[str, str]
) -> None:
    # given: a file without a label field, and one of another tenant
    unlabelled = api.upload(tenant, UNLABELLED, purpose="training").get_json()["id"]
    other = api.upload(api.headers_for("other"), LABELLED, purpose="training").get_json()["id"]
    # when / then
    r = api.submit(tenant, **train_body(unlabelled))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "missing_field"
    r = api.submit(tenant, **train_body(other))
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "file_not_found"
    r = api.submit(
        tenant, type="evaluate", task="text-classification", model="minilm-l6", input_file=unlabelled
    )
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "model_task_mismatch"


def test_an_image_model_cannot_be_the_base_of_text_training(
    api: ApiClient, tenant: dict[str, str], training_file: str
) -> None:
    # an embedding model may be the base of an image classifier? no: 400 model_task_mismatch
    images = api.upload(tenant, b'{"image": "x", "label": "a"}\n', purpose="training").get_json()["id"]
    r = api.submit(
        tenant,
        type="train",
        task="image-classification",
        base_model="minilm-l6",
        training_file=images,
        model_name="imgs",
    )
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "model_task_mismatch"


def test_imports_refuse_pickle_weights_and_code(tmp_path: Path) -> None:
    # given: a valid folder, then the same with pickle weights, then with a Python file
    folder = make_tiny_text_classifier(tmp_path / "m", ["a", "b"])
    assert check_folder(folder)["id2label"]
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(InvalidRequest, match="only safetensors weights are loaded"):
        check_folder(folder)
    (folder / "pytorch_model.bin").unlink()
    (folder / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(InvalidRequest, match="remote code is never run"):
        check_folder(folder)
