"""`params.explain` through HTTP with a real worker: token attributions, saliency PNGs, the 400s."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from transformers import AutoTokenizer

from inferq.shared.settings import Settings
from tests.helpers.labelled_data import sentiment_rows, stripe_rows, write_jsonl
from tests.helpers.tenant_http import Http
from tests.helpers.tiny_models import make_tiny_image_classifier, make_tiny_text_classifier
from tests.integration.test_evaluate_and_images import lines, register
from tests.integration.test_training import TENANT, events_of, submit, upload, wait_terminal

pytestmark = pytest.mark.integration


# `worker_settings` (parts of 30 records), `http` and `training_worker`: the shared ones of
# tests/conftest.py, for TENANT.


@pytest.fixture
def tenant_name() -> str:
    return TENANT


def test_text_classification_lines_carry_token_attributions(
    http: Http, training_worker: Any, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a tiny classifier and 40 sentences (two parts of 30 and 10 records)
    folder = make_tiny_text_classifier(tmp_path / "m", ["neg", "pos"])
    ref = register(worker_settings, "why", folder, "text-classification")
    rows = [{"id": r["id"], "text": r["text"]} for r in sentiment_rows(40)]
    input_file = upload(client, headers, write_jsonl(tmp_path / "in.jsonl", rows), purpose="input")
    # when: the same file is predicted with and without explain
    explained = submit(
        client,
        headers,
        type="predict",
        task="text-classification",
        model=ref,
        input_file=input_file,
        params={"explain": True},
    )
    plain = submit(
        client, headers, type="predict", task="text-classification", model=ref, input_file=input_file
    )
    done = wait_terminal(client, headers, explained["id"])
    assert done["status"] == "succeeded", done
    assert wait_terminal(client, headers, plain["id"])["status"] == "succeeded"
    # then: each line explains its own label, one attribution per word piece of its text
    out = lines(client, headers, f"/v1/jobs/{explained['id']}/results")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert [o["id"] for o in out] == [r["id"] for r in rows]
    for row, line in zip(rows, out, strict=True):
        explanation = line["explanation"]
        assert explanation["label"] == line["label"]
        assert explanation["method"] == "gradient_x_input"
        assert explanation["tokens"] == tokenizer.tokenize(row["text"])
        assert len(explanation["attributions"]) == len(explanation["tokens"])
        assert all(isinstance(a, float) for a in explanation["attributions"])
    # and the predictions are those of the job without explain, whose lines have no explanation
    without = lines(client, headers, f"/v1/jobs/{plain['id']}/results")
    assert all("explanation" not in line for line in without)
    assert [{k: v for k, v in line.items() if k != "explanation"} for line in out] == without
    # and the job's events say where explanations were computed
    events = events_of(client, headers, explained["id"])
    (note,) = [e for e in events if e["kind"] == "explanations"]
    assert note["message"].startswith("explanations: gradient x input for 40 records")
    assert note["data"]["records"] == 40
    parts = [e["data"] for e in events if e["kind"] == "part_done"]
    assert len(parts) == 2 and all(p["explain_method"] == "gradient_x_input" for p in parts)
    assert sum(p["explained"] for p in parts) == 40 and all(p["explain_seconds"] >= 0 for p in parts)
    assert not [e for e in events_of(client, headers, plain["id"]) if e["kind"] == "explanations"]


def test_image_lines_carry_a_saliency_png(
    http: Http, training_worker: Any, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a tiny ViT (16x16 inputs) and five striped images
    ref = register(
        worker_settings,
        "looker",
        make_tiny_image_classifier(tmp_path / "vit", ["h", "v"], "vit"),
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
        params={"explain": True, "top_k": 1},
    )
    done = wait_terminal(client, headers, job["id"])
    # then: every line has a grayscale PNG of the model's input size for its label
    assert done["status"] == "succeeded", done
    out = lines(client, headers, f"/v1/jobs/{job['id']}/results")
    assert [o["id"] for o in out] == [r["id"] for r in inputs]
    for line in out:
        saliency = line["saliency"]
        assert saliency["label"] == line["label"] and saliency["method"] == "gradient"
        png = Image.open(io.BytesIO(base64.b64decode(saliency["png_base64"])))
        assert png.format == "PNG" and png.mode == "L"
        assert png.size == (saliency["width"], saliency["height"]) == (16, 16)
    (note,) = [e for e in events_of(client, headers, job["id"]) if e["kind"] == "explanations"]
    assert note["message"].startswith("explanations: gradient saliency maps for 5 records")


def test_explain_is_refused_where_it_cannot_act(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    rows = [{"id": r["id"], "text": r["text"], "label": r["label"]} for r in sentiment_rows(4)]
    input_file = upload(client, headers, write_jsonl(tmp_path / "in.jsonl", rows), purpose="input")
    # embedding predict jobs, and evaluate jobs of any task, answer 400 on params.explain: true
    for body in (
        {"type": "predict", "task": "embedding", "model": "minilm-l6"},
        {"type": "evaluate", "task": "text-classification", "model": "minilm-l6"},
    ):
        r = client.post(
            "/v1/jobs", headers=headers, json={**body, "input_file": input_file, "params": {"explain": True}}
        )
        assert r.status_code == 400, r.get_json()
        error = r.get_json()["error"]
        assert error["code"] == "unsupported_param" and error["field"] == "params.explain"
    # explain: false is no explanation, accepted anywhere
    r = client.post(
        "/v1/jobs",
        headers=headers,
        json={
            "type": "predict",
            "task": "embedding",
            "model": "minilm-l6",
            "input_file": input_file,
            "params": {"explain": False},
        },
    )
    assert r.status_code == 202, r.get_json()
