"""Hostile image records (bombs, oversized images, keys no storage can hold, truncated files) through the
real pipeline: each is a per-record error in predict, evaluate and train jobs, and a part given up with
an unreadable input still writes one error line per record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inferq.shared.db import session_scope
from inferq.shared.models import File, Job
from inferq.shared.settings import Settings
from inferq.shared.storage import get_storage
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.runner import part_ids_of, run_part
from tests.helpers.hostile_images import b64, png_claiming, truncated_png
from tests.helpers.labelled_data import stripe_rows, write_jsonl
from tests.helpers.tenant_http import Http, register_model
from tests.helpers.tiny_models import make_tiny_image_classifier
from tests.helpers.worker_env import QUICK_LEASES
from tests.integration.test_training import TENANT, submit, upload, wait_terminal

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# id → (the record's image fields, the error code it must get)
HOSTILE: dict[str, tuple[dict[str, str], str]] = {
    "bomb": ({"image": b64(png_claiming(20000, 20000))}, "image_too_large"),
    "huge": ({"image": b64(png_claiming(7900, 7900))}, "image_too_large"),
    "folder": ({"image_key": "jobs"}, "image_not_found"),
    "nul": ({"image_key": "images/a\0b.png"}, "invalid_image_key"),
    "long": ({"image_key": "k" * 5000}, "invalid_image_key"),
    "truncated": ({"image": b64(truncated_png())}, "invalid_image"),  # fails only when decoded
    "text": ({"image": b64(b"hello, not an image")}, "invalid_image"),
}


@pytest.fixture
def tenant_name() -> str:
    return TENANT


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    """Parts of 30 records; one attempt per part (the give-up test's part fails at once)."""
    return make_worker_settings(INFERQ_PART_RECORDS="30", INFERQ_MAX_PART_ATTEMPTS="1", **QUICK_LEASES)


def lines(http: Http, url: str) -> list[dict[str, Any]]:
    client, headers = http
    return [json.loads(x) for x in client.get(url, headers=headers).data.splitlines()]


def hostile_rows(label: str | None = None) -> list[dict[str, str]]:
    return [
        {"id": rid, **fields, **({"label": label} if label else {})} for rid, (fields, _) in HOSTILE.items()
    ]


def assert_hostile_errors(errors: list[dict[str, Any]]) -> None:
    assert {e["id"]: e["error"]["code"] for e in errors} == {rid: code for rid, (_, code) in HOSTILE.items()}
    for e in errors:
        message = e["error"]["message"]
        assert " at 0x" not in message and len(message) < 400, message


def test_hostile_images_are_per_record_errors_in_predict_and_evaluate_jobs(
    http: Http, training_worker: Any, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: an image classifier, and 4 good images among 7 hostile records in one part
    ref = register_model(
        worker_settings,
        TENANT,
        "tiny-vit",
        make_tiny_image_classifier(tmp_path / "vit", ["h", "v"]),
        "image-classification",
    )
    good = stripe_rows(4)
    rows = [*good[:2], *hostile_rows(), *good[2:]]
    predict_rows = [{k: v for k, v in r.items() if k != "label"} for r in rows]
    eval_rows = [r if "label" in r else {**r, "label": "h"} for r in rows]
    # when: a predict job and an evaluate job run them
    jobs = {
        kind: submit(
            client,
            headers,
            type=kind,
            task="image-classification",
            model=ref,
            input_file=upload(
                client, headers, write_jsonl(tmp_path / f"{kind}.jsonl", data), purpose="input"
            ),
        )["id"]
        for kind, data in (("predict", predict_rows), ("evaluate", eval_rows))
    }
    # then: each job scores or predicts the good images, and each hostile record is its own error
    for kind, job_id in jobs.items():
        done = wait_terminal(client, headers, job_id)
        assert done["status"] == "succeeded", done
        assert done["progress"] == {"total": 11, "completed": 4, "failed": 7}, (kind, done)
        assert [r["id"] for r in lines(http, f"/v1/jobs/{job_id}/results")] == [r["id"] for r in good]
        assert_hostile_errors(lines(http, f"/v1/jobs/{job_id}/errors"))
    assert (
        sum(
            map(
                sum, wait_terminal(client, headers, jobs["evaluate"])["metrics"]["confusion_matrix"]["matrix"]
            )
        )
        == 4
    )


def test_a_training_file_with_hostile_images_trains_on_the_rest(
    http: Http, training_worker: Any, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: 40 striped images and the 7 hostile records, all labelled
    path = write_jsonl(tmp_path / "train.jsonl", [*stripe_rows(40), *hostile_rows(label="h")])
    # when: the built-in CNN trains on them
    job = submit(
        client,
        headers,
        type="train",
        task="image-classification",
        training_file=upload(client, headers, path),
        model_name="stripes",
        hyperparameters={"epochs": 1, "image_size": 8, "batch_size": 8},
    )
    done = wait_terminal(client, headers, job["id"])
    # then: the job trains on the 40 good records; the hostile ones are reported, not fatal
    assert done["status"] == "succeeded", done
    assert done["result_model"] == "stripes:1"
    assert_hostile_errors(lines(http, f"/v1/jobs/{job['id']}/errors"))


def test_a_part_given_up_on_an_unreadable_input_writes_one_error_per_record(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given: a job of 45 records planned into parts of 30 and 15
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": f"text {i}"} for i in range(45)])
    job_id = submit(
        client,
        headers,
        type="predict",
        task="embedding",
        model="minilm-l6",
        input_file=upload(client, headers, path, purpose="input"),
    )["id"]
    plan_job(job_id, worker_settings)
    first, second = part_ids_of(worker_settings, job_id)
    # and: the input object is gone from storage, so no attempt (nor the give-up) can read the parts
    with session_scope(worker_settings) as session:
        job = session.get(Job, job_id)
        assert job is not None
        file = session.get(File, job.input_file_id)
        assert file is not None
        get_storage(worker_settings).delete(file.storage_key)
    # when: each part runs its one attempt and is given up
    assert run_part(first, worker_settings) == "failed"
    assert run_part(second, worker_settings) == "failed"
    finalize_job(job_id, worker_settings)
    # then: every record of each part's range has its error line, by index and line
    errors = lines(http, f"/v1/jobs/{job_id}/errors")
    assert [(e["index"], e["line"]) for e in errors] == [(i, i + 1) for i in range(45)]
    assert {e["error"]["code"] for e in errors} == {"part_failed"}
    assert "could not be read again" in errors[0]["error"]["message"]
    job_view = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
    assert job_view["progress"] == {"total": 45, "completed": 0, "failed": 45}


def test_a_part_of_large_images_holds_decoded_pixels_for_one_image_at_a_time(tmp_path: Path) -> None:
    # given: one part of 16 PNGs of 4000x4000 (75 KB of base64 each; 61 MiB each once decoded, so about
    # 1 GiB if the part held them all, 1.8 GiB measured before images decoded per batch)
    folder = make_tiny_image_classifier(tmp_path / "vit", ["h", "v"])
    # when: a fresh process parses and predicts the part as a worker does, measuring its peak RSS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.image_memory", str(folder), "16", "4000"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    # then: every image is predicted, and the part added under 300 MiB at its peak (62 MiB measured):
    # one image decoded at a time, each shrunk to the model's input before the next
    assert measured["outputs"] == 16 and measured["errors"] == 0, measured
    assert measured["delta_mib"] < 300, measured
