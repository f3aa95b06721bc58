"""The JSON Schemas of the contract models, named as `/openapi.json` names its components: request
bodies as the validators read them, objects as the API writes them. `api.openapi` publishes them and
`api.contract.codegen` writes the light client's types from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from inferq.api.contract import objects, requests

Schema = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{model}"
# Component name → model; requests are shown as the validator reads them, objects as the API writes them.
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "PredictParams": requests.PredictParams,
    "Hyperparameters": requests.Hyperparameters,
    "RetryCreate": requests.RetryCreate,
    "BatchCreate": requests.BatchCreate,
    "EmbeddingsCreate": requests.EmbeddingsCreate,
}
OBJECT_MODELS: dict[str, type[BaseModel]] = {
    "Error": objects.Error,
    "File": objects.File,
    "Deleted": objects.Deleted,
    "Job": objects.Job,
    "JobError": objects.JobError,
    "JobEvent": objects.JobEvent,
    "ModelVersion": objects.ModelVersion,
    "Model": objects.Model,
    "Batch": objects.Batch,
    "Throughput": objects.Throughput,
    "Manifest": objects.Manifest,
    "WebhookSecret": objects.WebhookSecret,
    "FileList": objects.FileList,
    "JobList": objects.JobList,
    "JobEventList": objects.JobEventList,
    "ModelList": objects.ModelList,
    "BatchList": objects.BatchList,
    "DryRun": objects.DryRun,
    "Readiness": objects.Readiness,
    "Embeddings": objects.Embeddings,
}


def model_schemas() -> dict[str, Schema]:
    """The components generated from the contract models, `JobCreate` (the discriminated union of the
    predict, train and evaluate bodies) included."""
    pairs = [(m, "validation") for m in REQUEST_MODELS.values()]
    pairs += [(m, "serialization") for m in OBJECT_MODELS.values()]
    _, top = models_json_schema(pairs, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
    schemas: dict[str, Schema] = dict(top.get("$defs", {}))
    job_create = TypeAdapter[Any](requests.JobCreate).json_schema(ref_template=REF_TEMPLATE)
    schemas.update(job_create.pop("$defs", {}))
    schemas["JobCreate"] = job_create
    return schemas
