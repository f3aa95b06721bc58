"""`/v1/models`: built-ins and the tenant's own versions, per tenant; deleting a version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sqlalchemy import select

from inferq.shared import jobs
from inferq.shared.db import session_scope
from inferq.shared.models import Tenant
from inferq.shared.registry import register_folder
from inferq.shared.states import JobStatus
from inferq.shared.storage import get_storage
from inferq.shared.tasks import TEXT_CLASSIFICATION
from tests.helpers.api_client import ApiClient

pytestmark = pytest.mark.integration

LABELS = ["negative", "positive"]


def hf_folder(path: Path) -> Path:
    """A Hugging Face classification folder: config.json with the labels and safetensors weights.

    The API only reads the registry rows; these weights are never loaded here."""
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "bert",
        "id2label": {str(i): label for i, label in enumerate(LABELS)},
        "max_position_embeddings": 64,
    }
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    save_file({"classifier.weight": np.zeros((2, 4), dtype=np.float32)}, str(path / "model.safetensors"))
    return path


def register(api: ApiClient, tenant: str, name: str, folder: Path) -> str:
    with session_scope(api.settings) as session:
        tenant_id = session.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar_one()
        return register_folder(
            session, get_storage(api.settings), tenant_id, name, folder, TEXT_CLASSIFICATION
        ).ref


def test_models_list_the_builtins_and_only_the_tenants_own(api: ApiClient, tmp_path: Path) -> None:
    # given tenant A with two versions of "sentiment", and tenant B with none
    a, b = api.headers_for("a"), api.headers_for("b")
    folder = hf_folder(tmp_path / "sentiment")
    assert register(api, "a", "sentiment", folder) == "sentiment:1"
    assert register(api, "a", "sentiment", folder) == "sentiment:2"

    # when each lists the models
    listed_a = api.client.get("/v1/models", headers=a).get_json()
    listed_b = api.client.get("/v1/models", headers=b).get_json()

    # then both see the built-in, and only A sees its model with both versions
    assert [m["id"] for m in listed_a["data"]] == ["minilm-l6", "sentiment"]
    assert [m["id"] for m in listed_b["data"]] == ["minilm-l6"]
    builtin = listed_b["data"][0]
    assert (builtin["builtin"], builtin["task"], builtin["latest_version"]) == (True, "embedding", 1)
    sentiment = listed_a["data"][1]
    assert (sentiment["task"], sentiment["latest_version"], sentiment["builtin"]) == (
        TEXT_CLASSIFICATION,
        2,
        False,
    )
    assert [v["id"] for v in sentiment["versions"]] == ["sentiment:1", "sentiment:2"]


def test_a_model_and_a_version_read_with_their_details(api: ApiClient, tmp_path: Path) -> None:
    # given a tenant model
    headers = api.headers_for("a")
    register(api, "a", "sentiment", hf_folder(tmp_path / "m"))

    # when it is read by name and by name:version
    model = api.client.get("/v1/models/sentiment", headers=headers).get_json()
    version = api.client.get("/v1/models/sentiment:1", headers=headers).get_json()
    builtin = api.client.get("/v1/models/minilm-l6", headers=headers).get_json()

    # then the version carries its task, labels, metrics, origin and creation time
    assert model["versions"] == [version]
    assert version["task"] == TEXT_CLASSIFICATION
    assert version["labels"] == LABELS
    assert set(version) >= {"metrics", "created_by_job", "created_at", "weights_sha256"}
    assert version["created_at"].endswith("Z")
    assert builtin["versions"][0]["id"] == "minilm-l6:1"
    # and another tenant, a missing version or a bad reference are errors
    assert api.client.get("/v1/models/sentiment", headers=api.headers_for("b")).status_code == 404
    assert api.client.get("/v1/models/sentiment:9", headers=headers).status_code == 404
    assert api.client.get("/v1/models/minilm-l6:2", headers=headers).status_code == 404
    assert api.client.get("/v1/models/bad%20ref!", headers=headers).status_code == 400


def test_a_version_in_use_cannot_be_deleted_and_a_deleted_one_no_longer_resolves(
    api: ApiClient, tmp_path: Path
) -> None:
    # given a model version that a queued job uses
    headers = api.headers_for("a")
    register(api, "a", "sentiment", hf_folder(tmp_path / "m"))
    file_id = api.upload(headers, b'{"text": "great"}\n').get_json()["id"]
    job = api.submit(
        headers, type="predict", task=TEXT_CLASSIFICATION, model="sentiment", input_file=file_id
    ).get_json()
    assert job["model"] == "sentiment:1"

    # when the version is deleted while the job lives
    busy = api.client.delete("/v1/models/sentiment:1", headers=headers)

    # then it is a 409 model_in_use
    assert busy.status_code == 409
    assert busy.get_json()["error"]["code"] == "model_in_use"

    # and once the job has ended, it can be deleted: its weights go, and the name no longer resolves
    api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    with session_scope(api.settings) as session:
        jobs.transition(session, job["id"], JobStatus.CANCELLED)
    deleted = api.client.delete("/v1/models/sentiment:1", headers=headers)
    assert deleted.status_code == 200
    assert deleted.get_json() == {"id": "sentiment:1", "object": "model", "deleted": True}
    assert not [k for k in get_storage(api.settings).list("") if "/models/" in k]
    assert api.client.get("/v1/models/sentiment", headers=headers).status_code == 404
    again = api.submit(
        headers, type="predict", task=TEXT_CLASSIFICATION, model="sentiment", input_file=file_id
    )
    assert again.status_code == 404
    assert again.get_json()["error"]["code"] == "model_not_found"
    # and the finished job still names the version it ran
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()["model"] == "sentiment:1"


def test_builtins_and_bare_names_cannot_be_deleted(api: ApiClient) -> None:
    headers = api.headers_for()

    # when a built-in, a bare name, or a missing version is deleted
    builtin = api.client.delete("/v1/models/minilm-l6:1", headers=headers)
    bare = api.client.delete("/v1/models/sentiment", headers=headers)
    missing = api.client.delete("/v1/models/sentiment:3", headers=headers)

    # then each is refused for its reason
    assert (builtin.status_code, builtin.get_json()["error"]["code"]) == (409, "model_builtin")
    assert (bare.status_code, bare.get_json()["error"]["code"]) == (400, "version_required")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "model_not_found")
