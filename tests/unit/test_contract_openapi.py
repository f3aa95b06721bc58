"""`/openapi.json` is generated from the contract models: every body the validators accept is a valid
`JobCreate` (train and evaluate too), and the document's limits are the validators' own constants."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from inferq.api.contract import objects, requests
from inferq.api.contract.errors import ErrorCode
from inferq.api.contract.schemas import OBJECT_MODELS, REQUEST_MODELS
from inferq.api.contract.validate import parse_job_body
from inferq.api.embedder import EmbedderUnavailable
from inferq.api.openapi import openapi_document
from inferq.shared.errors import InvalidRequest
from inferq.shared.openai_embeddings import RequestError, parse_request, response_body
from inferq.shared.settings import MAX_RETENTION_DAYS

BODIES: dict[str, dict[str, Any]] = {
    "predict": {
        "type": "predict",
        "task": "text-classification",
        "model": "sentiment:2",
        "input_file": "file_01",
        "params": {"top_k": 3, "explain": True, "precision": "fp32"},
        "priority": 5,
        "metadata": {"team": "search"},
        "webhook_url": "https://hooks.example.com/inferq",
        "completion_window": "90m",
        "retention_days": 0,
    },
    "train": {
        "type": "train",
        "task": "image-classification",
        "base_model": None,
        "training_file": "file_02",
        "validation_file": "file_03",
        "model_name": "digits",
        "hyperparameters": {"epochs": 5, "learning_rate": 0.001, "image_size": 28},
    },
    "evaluate": {
        "type": "evaluate",
        "task": "text-classification",
        "model": "train:job_01",
        "input_file": "file_04",
        "completion_window": "7d",
    },
}


def validator_of(component: str) -> Draft202012Validator:
    document = openapi_document()
    root = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return Draft202012Validator(root)


@pytest.mark.parametrize("kind", list(BODIES))
def test_every_job_type_is_a_valid_job_create(kind: str) -> None:
    # given a body the server accepts (its own validator says so)
    body = BODIES[kind]
    assert parse_job_body(body).type == kind
    # when it is checked against the document's JobCreate
    errors = list(validator_of("JobCreate").iter_errors(body))
    # then the document accepts it too
    assert errors == []


@pytest.mark.parametrize(
    "body",
    [
        {**BODIES["predict"], "params": {"max_length": 9000}},
        {**BODIES["predict"], "colour": "red"},
        {**BODIES["train"], "model_name": "Bad Name"},
        {**BODIES["train"], "hyperparameters": {"momentum": 0.9}},
        {**BODIES["evaluate"], "task": "embedding"},
        {**BODIES["evaluate"], "completion_window": "24 hours"},
        {**BODIES["predict"], "type": "sorcery"},
    ],
)
def test_what_the_document_refuses_the_validator_refuses(body: dict[str, Any]) -> None:
    assert list(validator_of("JobCreate").iter_errors(body)) != []
    with pytest.raises(InvalidRequest):
        parse_job_body(body)


def test_the_documents_limits_are_the_validators_constants() -> None:
    # given the generated components
    schemas = openapi_document()["components"]["schemas"]
    predict = schemas["PredictJobCreate"]["properties"]

    def non_null(prop: dict[str, Any]) -> dict[str, Any]:
        return next(s for s in prop.get("anyOf", [prop]) if s.get("type") != "null")

    # then metadata, windows, priorities and retention say what the validators check
    metadata = non_null(predict["metadata"])
    assert metadata["maxProperties"] == requests.MAX_METADATA_KEYS
    assert metadata["additionalProperties"]["maxLength"] == requests.MAX_METADATA_VALUE_LENGTH
    assert metadata["propertyNames"]["maxLength"] == requests.MAX_METADATA_KEY_LENGTH
    assert non_null(predict["completion_window"])["pattern"] == requests.WINDOW_PATTERN
    priority = non_null(predict["priority"])
    assert (priority["minimum"], priority["maximum"]) == requests.PRIORITY_RANGE
    assert non_null(predict["retention_days"])["maximum"] == MAX_RETENTION_DAYS
    assert non_null(predict["webhook_url"])["maxLength"] == requests.MAX_URL_LENGTH
    precision = non_null(schemas["PredictParams"]["properties"]["precision"])
    assert tuple(precision["enum"]) == requests.PRECISIONS
    assert schemas["RetryCreate"]["properties"]["only"]["enum"] == list(requests.RETRY_ONLY)
    # and every model is a component of the document
    assert set(REQUEST_MODELS) | set(OBJECT_MODELS) | {"JobCreate"} <= set(schemas)


def test_embeddings_documents_its_503_embedder_unavailable_with_retry_after() -> None:
    # given the embeddings operation of the document
    answers = openapi_document()["paths"]["/v1/embeddings"]["post"]["responses"]
    # then its 503 names the embedder's code (declared with the contract's codes) and Retry-After
    assert ErrorCode.EMBEDDER_UNAVAILABLE.value == "embedder_unavailable"
    assert "embedder_unavailable" in answers["503"]["description"]
    assert "Retry-After" in answers["503"]["headers"]
    assert EmbedderUnavailable.code == ErrorCode.EMBEDDER_UNAVAILABLE.value


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"model": "minilm-l6", "input": "hello"}, True),
        ({"model": "minilm-l6", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 384}, True),
        ({"model": "minilm-l6", "input": "x", "encoding_format": None, "user": "u"}, True),
        ({"model": "minilm-l6", "input": ["a"] * requests.MAX_EMBEDDING_INPUTS}, True),
        ({"model": "minilm-l6", "input": ["a"] * (requests.MAX_EMBEDDING_INPUTS + 1)}, False),
        ({"model": "minilm-l6", "input": [1, 2]}, False),
        ({"model": "minilm-l6", "input": ""}, False),
        ({"model": "minilm-l6", "input": []}, False),
        ({"model": "", "input": "x"}, False),
        ({"model": "minilm-l6", "input": "x", "dimensions": True}, False),
        ({"model": "minilm-l6", "input": "x", "encoding_format": "hex"}, False),
        ({"model": "minilm-l6", "input": "x", "temperature": 1}, False),
        ({"input": "x"}, False),
    ],
)
def test_the_embeddings_body_is_documented_as_parse_request_reads_it(
    body: dict[str, Any], accepted: bool
) -> None:
    # given the endpoint's own limit and the document's EmbeddingsCreate (generated from the model)
    documented = list(validator_of("EmbeddingsCreate").iter_errors(body)) == []
    # when the endpoint's parser reads the body
    try:
        parse_request(body, max_inputs=requests.MAX_EMBEDDING_INPUTS)
        parsed = True
    except RequestError:
        parsed = False
    # then both agree
    assert (documented, parsed) == (accepted, accepted)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_the_embeddings_answer_has_exactly_its_models_fields(encoding_format: str) -> None:
    # given the answer the endpoint (and a batch's output line) writes
    body = response_body("minilm-l6", [[0.5, 0.25], [1.0, 0.0]], [3, 4], encoding_format)
    # then it has the fields of the contract's Embeddings, and fits their types
    assert set(body) == set(objects.Embeddings.model_fields)
    assert set(body["data"][0]) == set(objects.Embedding.model_fields)
    assert set(body["usage"]) == set(objects.EmbeddingsUsage.model_fields)
    objects.Embeddings.model_validate(body)
    assert list(validator_of("Embeddings").iter_errors(body)) == []
