"""Evaluate jobs and image classification (predict and train) through the real pipeline."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from inferq.shared.settings import Settings
from inferq.shared.storage import get_storage
from tests.helpers.labelled_data import png_base64, sentiment_rows, stripe_rows, write_jsonl
from tests.helpers.tenant_http import Http, register_model, tenant_id
from tests.helpers.tiny_models import make_tiny_image_classifier, make_tiny_text_classifier
from tests.integration.test_training import TENANT, submit, upload, wait_terminal

pytestmark = pytest.mark.integration


# `worker_settings` (parts of 30 records), `http` and `training_worker`: the shared ones of
# tests/conftest.py, for TENANT.


@pytest.fixture
def tenant_name() -> str:
    return TENANT


def register(settings: Settings, name: str, folder: Path, task: str) -> str:
    return register_model(settings, TENANT, name, folder, task)


def lines(client: FlaskClient, headers: dict[str, str], url: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.get(url, headers=headers).data.splitlines()]


def test_evaluate_scores_a_model_on_a_labelled_file(
    http: Http, training_worker: Any, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a classifier and 12 labelled records plus one without a label
    register(
        worker_settings,
        "judge",
        make_tiny_text_classifier(tmp_path / "m", ["neg", "pos"]),
        "text-classification",
    )
    path = write_jsonl(tmp_path / "eval.jsonl", sentiment_rows(12), ['{"id": "x", "text": "no label"}'])
    # when
    job = submit(
        client,
        headers,
        type="evaluate",
        task="text-classification",
        model="judge",
        input_file=upload(client, headers, path),
    )
    done = wait_terminal(client, headers, job["id"])
    # then: metrics match the per-record predictions in the output file
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"total": 13, "completed": 12, "failed": 1}
    rows = lines(client, headers, f"/v1/jobs/{job['id']}/results")
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(12)]
    expected = [r["expected"] for r in rows]
    predicted = [r["label"] for r in rows]
    assert expected == ["pos", "neg"] * 6
    metrics = done["metrics"]
    assert metrics["accuracy"] == round(sum(e == p for e, p in zip(expected, predicted, strict=True)) / 12, 6)
    matrix = metrics["confusion_matrix"]
    assert matrix["labels"] == ["neg", "pos"]
    assert sum(map(sum, matrix["matrix"])) == 12
    assert matrix["matrix"][1][1] == sum(e == p == "pos" for e, p in zip(expected, predicted, strict=True))
    assert set(metrics["per_class"]) == {"neg", "pos"} and "precision" in metrics["per_class"]["pos"]
    assert 0 <= metrics["macro_f1"] <= 1
    (error,) = lines(client, headers, f"/v1/jobs/{job['id']}/errors")
    assert error["id"] == "x" and error["error"]["code"] == "missing_field"


def test_cnn_trains_on_images_and_predicts_with_per_record_image_errors(
    http: Http, training_worker: Any, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: 8x8 striped images, a train job on the built-in CNN
    training = upload(client, headers, write_jsonl(tmp_path / "imgs.jsonl", stripe_rows(48)))
    job = submit(
        client,
        headers,
        type="train",
        task="image-classification",
        training_file=training,
        model_name="stripes",
        hyperparameters={"epochs": 3, "image_size": 8, "batch_size": 8},
    )
    done = wait_terminal(client, headers, job["id"])
    assert done["status"] == "succeeded", done
    assert done["model"] == "cnn-small" and done["result_model"] == "stripes:1"
    # and an image in the tenant's storage area, referenced by image_key
    pixels = [[230 if r % 2 == 0 else 20 for _ in range(8)] for r in range(8)]
    get_storage(worker_settings).put_bytes(
        f"t/{tenant_id(worker_settings, TENANT)}/images/h.png", base64.b64decode(png_base64(pixels))
    )
    good = stripe_rows(4, seed=9)
    inputs = [
        *({"id": r["id"], "image": r["image"]} for r in good),
        {"id": "corrupt", "image": base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()},
        {"id": "notb64", "image": "%%%"},
        {"id": "key", "image_key": "images/h.png"},
        {"id": "escape", "image_key": "t/other-tenant/images/h.png"},
        {"id": "missing", "image_key": "images/none.png"},
    ]
    # when
    predict = submit(
        client,
        headers,
        type="predict",
        task="image-classification",
        model="stripes:1",
        input_file=upload(client, headers, write_jsonl(tmp_path / "in.jsonl", inputs), purpose="input"),
    )
    final = wait_terminal(client, headers, predict["id"])
    # then: good images are classified, bad ones are per-record errors
    assert final["status"] == "succeeded", final
    assert final["progress"] == {"total": 9, "completed": 5, "failed": 4}
    rows = lines(client, headers, f"/v1/jobs/{predict['id']}/results")
    assert [r["id"] for r in rows] == [*(r["id"] for r in good), "key"]
    assert all(set(r["scores"]) == {"h", "v"} for r in rows)
    errors = {e["id"]: e["error"]["code"] for e in lines(client, headers, f"/v1/jobs/{predict['id']}/errors")}
    assert errors == {
        "corrupt": "invalid_image",
        "notb64": "invalid_image",
        "escape": "invalid_image_key",
        "missing": "image_not_found",
    }


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_hugging_face_image_models_predict(
    http: Http,
    training_worker: Any,
    worker_settings: Settings,
    tmp_path: Path,
    kind: str,
) -> None:
    client, headers = http
    # given: a tiny random-weight image classifier folder with safetensors weights
    ref = register(
        worker_settings,
        f"tiny-{kind}",
        make_tiny_image_classifier(tmp_path / kind, ["h", "v"], kind),
        "image-classification",
    )
    inputs = [{"id": r["id"], "image": r["image"]} for r in stripe_rows(5)]
    # when
    job = submit(
        client,
        headers,
        type="predict",
        task="image-classification",
        model=ref,
        input_file=upload(client, headers, write_jsonl(tmp_path / "in.jsonl", inputs), purpose="input"),
        params={"top_k": 1},
    )
    done = wait_terminal(client, headers, job["id"])
    # then
    assert done["status"] == "succeeded", done
    rows = lines(client, headers, f"/v1/jobs/{job['id']}/results")
    assert len(rows) == 5 and all(r["label"] in ("h", "v") and len(r["scores"]) == 1 for r in rows)
