"""One of everything a tenant can own, made through the API (and, where a worker would, the finalizer's
own steps), for the isolation, limits and fuzzing tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from inferq.shared.db import session_scope
from inferq.shared.models import ApiKey, Tenant
from inferq.shared.registry import register_folder
from inferq.shared.storage import get_storage
from inferq.shared.tasks import TEXT_CLASSIFICATION
from inferq.shared.tenants import hash_key
from tests.helpers.api_client import ApiClient
from tests.integration.test_api_jobs import finish_job
from tests.integration.test_api_models import hf_folder

INPUT = b"".join(b'{"id": "r%d", "text": "sentence %d"}\n' % (i, i) for i in range(6))
LABELLED = b'{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'
BATCH = (
    "\n".join(
        json.dumps(
            {
                "custom_id": f"c{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "minilm-l6", "input": f"text {i}"},
            }
        )
        for i in range(3)
    )
    + "\n"
).encode()


@dataclass(frozen=True)
class TenantResources:
    name: str
    key: str
    tenant_id: str
    input_file: str
    training_file: str
    batch_file: str
    output_file: str
    error_file: str
    job: str  # a predict job that succeeded, with its output and error files
    train_job: str
    evaluate_job: str
    batch: str
    model: str  # the tenant's model name
    model_version: str  # name:version
    webhook_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def secrets(self) -> list[str]:
        """Every id, name and secret of this tenant that another tenant must never see."""
        return [
            self.input_file,
            self.training_file,
            self.batch_file,
            self.output_file,
            self.error_file,
            self.job,
            self.train_job,
            self.evaluate_job,
            self.batch,
            self.model_version,
            self.webhook_secret,
        ]


def tenant_of_key(api: ApiClient, key: str) -> str:
    with session_scope(api.settings) as session:
        return str(
            session.execute(select(ApiKey.tenant_id).where(ApiKey.key_hash == hash_key(key))).scalar_one()
        )


def job_bodies(
    input_file: str, training_file: str, batch_file: str, model_version: str
) -> dict[str, tuple[str, dict[str, Any]]]:
    """A valid body for every endpoint that creates a job: kind → (path, body)."""
    return {
        "predict": (
            "/v1/jobs",
            {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": input_file},
        ),
        "train": (
            "/v1/jobs",
            {
                "type": "train",
                "task": "text-classification",
                "training_file": training_file,
                "model_name": "fresh",
            },
        ),
        "evaluate": (
            "/v1/jobs",
            {
                "type": "evaluate",
                "task": "text-classification",
                "model": model_version,
                "input_file": training_file,
            },
        ),
        "batch": (
            "/v1/batches",
            {"input_file_id": batch_file, "endpoint": "/v1/embeddings", "completion_window": "24h"},
        ),
    }


def make_tenant_resources(api: ApiClient, name: str, folder: Path) -> TenantResources:
    """Files of every purpose, a finished predict job, a train, an evaluate and a batch, a model and a
    webhook secret, all of tenant `name`."""
    key = api.new_key(name)
    headers = api.auth_headers(key)
    tenant_id = tenant_of_key(api, key)

    def upload(data: bytes, filename: str, purpose: str) -> str:
        r = api.upload(headers, data, filename=filename, purpose=purpose)
        assert r.status_code == 201, r.get_json()
        return str(r.get_json()["id"])

    input_file = upload(INPUT, "in.jsonl", "input")
    training_file = upload(LABELLED, "train.jsonl", "training")
    batch_file = upload(BATCH, "batch.jsonl", "batch")
    with session_scope(api.settings) as session:
        tenant_name = session.execute(select(Tenant.name).where(Tenant.id == tenant_id)).scalar_one()
        assert tenant_name == name
        model_version = register_folder(
            session,
            get_storage(api.settings),
            tenant_id,
            f"{name}-model",
            hf_folder(folder),
            TEXT_CLASSIFICATION,
        ).ref
    bodies = job_bodies(input_file, training_file, batch_file, model_version)
    created: dict[str, str] = {}
    for kind, (path, body) in bodies.items():
        r = api.client.post(path, headers=headers, json=body)
        assert r.status_code in (200, 202), (kind, r.get_json())
        created[kind] = str(r.get_json()["id"])
    finish_job(api.settings, created["predict"], tenant_id, b'{"id": "r0"}\n', b"")
    job = api.client.get(f"/v1/jobs/{created['predict']}", headers=headers).get_json()
    secret = api.client.get("/v1/webhook_secret", headers=headers).get_json()["secret"]
    return TenantResources(
        name=name,
        key=key,
        tenant_id=tenant_id,
        input_file=input_file,
        training_file=training_file,
        batch_file=batch_file,
        output_file=job["output_file"],
        error_file=job["error_file"],
        job=created["predict"],
        train_job=created["train"],
        evaluate_job=created["evaluate"],
        batch=created["batch"],
        model=model_version.split(":")[0],
        model_version=model_version,
        webhook_secret=secret,
    )
