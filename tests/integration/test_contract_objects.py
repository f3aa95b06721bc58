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
    ]

    # then each has the model's fields, no more and no fewer, and fits their types
    for model, body in answers:
        assert set(body) == set(model.model_fields), (model.__name__, set(body) ^ set(model.model_fields))
        model.model_validate(body)
    # and the nested throughput and manifest of jobs have only their models' fields
    for model, body in answers:
        if model is objects.Job:
            nested = [(objects.Throughput, body["throughput"]), (objects.Manifest, body["reproducibility"])]
            for inner, value in nested:
                assert value is None or set(value) <= set(inner.model_fields), (inner.__name__, value)
