"""Each object the API answers with has exactly the fields of its contract model (api.contract.objects),
so `/openapi.json` and the client's generated types cannot drift from the serializers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from inferq.api.contract import objects
from tests.conftest import ApiClient
from tests.helpers.tenant_resources import make_tenant_resources

pytestmark = pytest.mark.integration


def test_every_object_has_exactly_its_models_fields(api: ApiClient, tmp_path: Path) -> None:
    # given a tenant with one of everything (files, a finished job, a train job, a batch, a model)
    tenant = make_tenant_resources(api, "objects", tmp_path / "model")
    get = api.client.get
    h = tenant.headers

    # when each kind of object is read
    answers: list[tuple[type[BaseModel], dict[str, object]]] = [
        (objects.Job, get(f"/v1/jobs/{tenant.job}", headers=h).get_json()),
        (objects.Job, get(f"/v1/jobs/{tenant.train_job}", headers=h).get_json()),
        (objects.Job, get(f"/v1/jobs/{tenant.evaluate_job}", headers=h).get_json()),
        (objects.File, get(f"/v1/files/{tenant.input_file}", headers=h).get_json()),
        (objects.Batch, get(f"/v1/batches/{tenant.batch}", headers=h).get_json()),
        (objects.Model, get(f"/v1/models/{tenant.model}", headers=h).get_json()),
        (objects.Model, get("/v1/models/minilm-l6", headers=h).get_json()),
        (objects.ModelVersion, get(f"/v1/models/{tenant.model_version}", headers=h).get_json()),
        (objects.JobEvent, get(f"/v1/jobs/{tenant.job}/events", headers=h).get_json()["data"][0]),
        (objects.Error, get("/v1/jobs/job_nope", headers=h).get_json()),
        (objects.FileList, get("/v1/files?limit=1", headers=h).get_json()),
        (objects.JobList, get("/v1/jobs?limit=1", headers=h).get_json()),
        (objects.JobEventList, get(f"/v1/jobs/{tenant.job}/events", headers=h).get_json()),
        (objects.ModelList, get("/v1/models", headers=h).get_json()),
        (objects.BatchList, get("/v1/batches", headers=h).get_json()),
        (objects.Readiness, get("/readyz").get_json()),
    ]
    dry = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": tenant.input_file}
    dry_run = api.client.post("/v1/jobs?dry_run=true", headers=h, json=dry)
    assert dry_run.status_code == 200, dry_run.get_json()
    answers.append((objects.DryRun, dry_run.get_json()))

    # then each has the model's fields, no more and no fewer (readiness: its error only when unready),
    # and fits their types
    for model, body in answers:
        fields = set(model.model_fields) - ({"error"} if model is objects.Readiness else set())
        assert set(body) == fields, (model.__name__, set(body) ^ fields)
        model.model_validate(body)
    # and the nested throughput and manifest of jobs have only their models' fields
    for model, body in answers:
        if model is objects.Job:
            nested = [(objects.Throughput, body["throughput"]), (objects.Manifest, body["reproducibility"])]
            for inner, value in nested:
                assert value is None or set(value) <= set(inner.model_fields), (inner.__name__, value)
    # and readiness checks and the dry run's first errors have only their models' fields
    ready = next(body for model, body in answers if model is objects.Readiness)
    for check in ready["checks"].values():  # type: ignore[attr-defined]
        assert set(check) in ({"ok", "ms"}, {"ok", "error"}), check
    reconciler = ready["reconciler"]
    assert reconciler is None or set(reconciler) == set(objects.ReconcilerStatus.model_fields)  # type: ignore[arg-type]
