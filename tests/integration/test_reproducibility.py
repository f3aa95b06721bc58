"""The reproducibility record: in the job object and in manifest.json beside the results, over HTTP,
on Postgres, Redis and moto S3, with the planner, runner and finalizer driven directly."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from inferq.shared import keys
from inferq.shared.db import session_scope
from inferq.shared.models import Job, JobEvent, JobPart, Tenant
from inferq.shared.registry import builtin_path, register_folder
from inferq.shared.settings import Settings, get_settings
from inferq.shared.storage import get_storage
from inferq.worker.finalizer import finalize_job
from inferq.worker.manifest import TOKENIZER_FILES
from inferq.worker.planner import plan_job
from inferq.worker.runner import part_ids_of, run_part
from tests.helpers.api_client import ApiClient
from tests.helpers.tiny_models import make_tiny_text_classifier

pytestmark = pytest.mark.integration


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    return make_worker_settings(INFERQ_PART_RECORDS="10")


@pytest.fixture
def client(make_client: Any, worker_settings: Settings) -> ApiClient:
    return make_client(worker_settings)  # type: ignore[no-any-return]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_tokenizer_sha256(folder: Path) -> str:
    """The documented tokenizer hash, recomputed from a local folder."""
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            h.update(name.encode() + b"\n" + hashlib.sha256((folder / name).read_bytes()).digest())
    return h.hexdigest()


def run_to_the_end(settings: Settings, job_id: str) -> None:
    plan_job(job_id, settings)
    for part_id in part_ids_of(settings, job_id):
        assert run_part(part_id, settings) == "done"
    assert finalize_job(job_id, settings) == "succeeded"


def record_tenant(job_id: str) -> str:
    with session_scope(get_settings()) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.tenant_id


def jsonl(rows: list[dict[str, Any]], broken_lines: int = 0) -> bytes:
    lines = [json.dumps(r) for r in rows] + ["{not json"] * broken_lines
    return ("\n".join(lines) + "\n").encode()


def test_a_finished_job_has_the_same_record_in_its_object_and_its_manifest(
    client: ApiClient, worker_settings: Settings
) -> None:
    # given: an embedding job over 25 records and 2 broken lines, not run yet
    headers = client.headers_for("repro")
    data = jsonl([{"id": f"r{i}", "text": f"sentence {i} about reproducible runs"} for i in range(25)], 2)
    file_id = client.upload(headers, data).get_json()["id"]
    r = client.submit(
        headers,
        type="predict",
        task="embedding",
        model="minilm-l6",
        input_file=file_id,
        params={"max_length": 64, "batch_tokens": 512},
    )
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    assert r.get_json()["reproducibility"] is None
    before = client.client.get(f"/v1/jobs/{job_id}/manifest", headers=headers)
    assert before.status_code == 404 and before.get_json()["error"]["code"] == "manifest_not_found"

    # when: it is planned, run and finalized
    run_to_the_end(worker_settings, job_id)

    # then: the job object and manifest.json carry the same record
    job = client.client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
    served = client.client.get(f"/v1/jobs/{job_id}/manifest", headers=headers)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/json")
    record = job["reproducibility"]
    assert record == json.loads(served.data)
    stored = get_storage(worker_settings).read_bytes(keys.job_manifest_key(record_tenant(job_id), job_id))
    assert json.loads(stored) == record

    # and: the file hashes are those of the bytes the API serves
    input_bytes = client.client.get(f"/v1/files/{file_id}/content", headers=headers).data
    output_bytes = client.client.get(f"/v1/jobs/{job_id}/results", headers=headers).data
    error_bytes = client.client.get(f"/v1/jobs/{job_id}/errors", headers=headers).data
    assert len(output_bytes.splitlines()) == 25 and len(error_bytes.splitlines()) == 2
    assert record["input_file"] == {"id": file_id, "sha256": sha256(input_bytes)}
    assert record["output_file"] == {"id": job["output_file"], "sha256": sha256(output_bytes)}
    assert record["error_file"] == {"id": job["error_file"], "sha256": sha256(error_bytes)}

    # and: the model, runtime, libraries and batch settings are the ones the job ran with
    assert record["model"] == {
        "ref": "minilm-l6:1",
        "name": "minilm-l6",
        "version": 1,
        "version_id": None,
        "weights_sha256": "builtin-minilm-l6-v1",
        "tokenizer_sha256": folder_tokenizer_sha256(builtin_path("minilm-l6")),
    }
    with session_scope(worker_settings) as session:
        stats = session.execute(select(JobPart.stats).where(JobPart.job_id == job_id)).scalars().all()
        events = (
            session.execute(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
            .scalars()
            .all()
        )
    assert record["runtime"] == {"precision": stats[0]["precision"], "device": "cpu"}
    assert record["libraries"]["torch"] == metadata.version("torch")
    assert record["libraries"]["transformers"] == metadata.version("transformers")
    assert record["libraries"]["inferq"] == metadata.version("inferq")
    assert record["batching"] == {"batch_tokens": 512, "max_batch_size": None, "max_length": 64}
    assert record["seed"] is None and record["type"] == "predict" and record["task"] == "embedding"

    # and: the job's events note the manifest once, after the state change that ended it
    kinds = [e.kind for e in events]
    assert kinds.count("manifest") == 1 and kinds.index("manifest") > kinds.index("part_done")
    manifest_event = next(e for e in events if e.kind == "manifest")
    assert manifest_event.data["key"].endswith(f"/jobs/{job_id}/manifest.json")

    # and: another tenant cannot see it
    other = client.client.get(f"/v1/jobs/{job_id}/manifest", headers=client.headers_for("intruder"))
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "job_not_found"


def test_a_tenant_model_record_hashes_its_stored_weights_and_tokenizer(
    client: ApiClient, worker_settings: Settings, tmp_path: Path
) -> None:
    # given: a tiny classifier registered for the tenant, and a job on it
    headers = client.headers_for("repro-model")
    folder = make_tiny_text_classifier(tmp_path / "clf", ["neg", "pos"])
    assert any((folder / name).is_file() for name in TOKENIZER_FILES)
    with session_scope(worker_settings) as session:
        tenant = session.execute(select(Tenant.id).where(Tenant.name == "repro-model")).scalar_one()
        model = register_folder(
            session, get_storage(worker_settings), tenant, "tiny", folder, "text-classification"
        )
    data = jsonl([{"text": f"this is sentence {i}"} for i in range(12)])
    file_id = client.upload(headers, data).get_json()["id"]
    job_id = client.submit(
        headers, type="predict", task="text-classification", model="tiny", input_file=file_id
    ).get_json()["id"]

    # when
    run_to_the_end(worker_settings, job_id)

    # then: the weights and tokenizer hashes are those of the folder the tenant registered
    record = client.client.get(f"/v1/jobs/{job_id}/manifest", headers=headers).get_json()
    assert record["model"] == {
        "ref": "tiny:1",
        "name": "tiny",
        "version": 1,
        "version_id": model.version_id,
        "weights_sha256": sha256((folder / "model.safetensors").read_bytes()),
        "tokenizer_sha256": folder_tokenizer_sha256(folder),
    }
    assert record == client.client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()["reproducibility"]
    output_bytes = client.client.get(f"/v1/jobs/{job_id}/results", headers=headers).data
    assert record["output_file"]["sha256"] == sha256(output_bytes)
