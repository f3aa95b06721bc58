"""The one mapping from pydantic's validation errors to the API's codes (api.contract.errors), and the
job bodies validated by their discriminated union (api.contract.validate)."""

from __future__ import annotations

from typing import Any

import pytest

from inferq.api.contract.errors import ErrorCode
from inferq.api.contract.requests import BatchCreate, RetryCreate, TrainJobCreate
from inferq.api.contract.validate import parse_body, parse_job_body
from inferq.shared.errors import InvalidRequest

PREDICT = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": "file_x"}
TRAIN = {"type": "train", "task": "text-classification", "training_file": "file_t", "model_name": "mine"}


def refusal(body: Any) -> tuple[str, str | None]:
    with pytest.raises(InvalidRequest) as e:
        parse_job_body(body)
    assert e.value.status == 400 and e.value.message
    return e.value.code, e.value.field


@pytest.mark.parametrize(
    ("pydantic_type", "body", "code", "field"),
    [
        ("missing", {k: v for k, v in PREDICT.items() if k != "model"}, "field_required", "model"),
        ("null for a required field", {**PREDICT, "model": None}, "field_required", "model"),
        ("union_tag_not_found", {"task": "embedding"}, "field_required", "type"),
        ("union_tag_invalid", {**PREDICT, "type": "sorcery"}, "invalid_value", "type"),
        ("extra_forbidden", {**PREDICT, "colour": 1}, "unknown_field", "colour"),
        ("extra_forbidden, server field", {**PREDICT, "status": "done"}, "forbidden_field", "status"),
        ("extra_forbidden, nested", {**PREDICT, "params": {"temp": 1}}, "unknown_field", "params.temp"),
        ("string_type", {**PREDICT, "model": 7}, "invalid_type", "model"),
        ("int_type (bool)", {**PREDICT, "priority": True}, "invalid_type", "priority"),
        ("int_type (float)", {**PREDICT, "params": {"top_k": 1.5}}, "invalid_type", "params.top_k"),
        ("bool_type", {**PREDICT, "params": {"cache": 1}}, "invalid_type", "params.cache"),
        ("dict_type", {**PREDICT, "metadata": "x"}, "invalid_type", "metadata"),
        ("model_type", {**PREDICT, "params": [1]}, "invalid_type", "params"),
        ("literal_error", {**PREDICT, "task": "translation"}, "invalid_value", "task"),
        ("greater_than_equal", {**PREDICT, "priority": -1}, "invalid_value", "priority"),
        ("less_than_equal", {**PREDICT, "retention_days": 10**6}, "invalid_value", "retention_days"),
        (
            "too_long (map)",
            {**PREDICT, "metadata": {str(i): "v" for i in range(17)}},
            "invalid_value",
            "metadata",
        ),
        (
            "string_too_long (map value)",
            {**PREDICT, "metadata": {"k": "v" * 513}},
            "invalid_value",
            "metadata",
        ),
        ("string_too_short", {**PREDICT, "input_file": ""}, "invalid_value", "input_file"),
        (
            "string_pattern_mismatch",
            {**PREDICT, "completion_window": "soon"},
            "invalid_value",
            "completion_window",
        ),
        ("value_error", {**PREDICT, "completion_window": "10s"}, "invalid_value", "completion_window"),
        ("value_error (url)", {**PREDICT, "webhook_url": "https://a b"}, "invalid_value", "webhook_url"),
        (
            "custom: unsupported_output_format",
            {**PREDICT, "params": {"output_format": "parquet"}},
            "unsupported_output_format",
            "params.output_format",
        ),
    ],
)
def test_each_pydantic_error_type_maps_to_one_code(
    pydantic_type: str, body: dict[str, Any], code: str, field: str
) -> None:
    # given a predict body with one thing wrong, of one pydantic error type
    # when it is validated
    # then it is the code and field the API has always answered
    assert refusal(body) == (code, field), pydantic_type


def test_a_body_that_is_no_object_is_invalid_json() -> None:
    for body in ([1], "x", None, 3):
        assert refusal(body) == ("invalid_json", None)


def test_the_first_failure_is_forbidden_then_unknown_then_missing_then_the_rest() -> None:
    # given bodies with several problems at once
    body = {"type": "predict", "task": 1, "zebra": 1, "apple": 1, "status": "x"}
    # then a server field wins, then unknown fields alphabetically, then missing ones, then the rest
    assert refusal(body) == ("forbidden_field", "status")
    assert refusal({k: v for k, v in body.items() if k != "status"}) == ("unknown_field", "apple")
    assert refusal({"type": "predict", "task": 1}) == ("field_required", "model")
    assert refusal({**PREDICT, "task": 1, "priority": 99}) == ("invalid_value", "task")


def test_every_error_code_of_the_mapping_is_declared() -> None:
    assert {c.value for c in ErrorCode} >= {
        "unknown_field",
        "forbidden_field",
        "field_required",
        "invalid_type",
        "invalid_value",
        "invalid_json",
        "unsupported_param",
    }


def test_train_and_retry_and_batch_bodies_use_the_same_mapping() -> None:
    # given train, retry and batch bodies with a problem each
    with pytest.raises(InvalidRequest) as e:
        parse_body(TrainJobCreate, {**TRAIN, "model_name": "Bad Name"})
    assert (e.value.code, e.value.field) == ("invalid_value", "model_name")
    with pytest.raises(InvalidRequest) as e:
        parse_body(RetryCreate, {"only": 3})
    assert (e.value.code, e.value.field) == ("invalid_value", "only")
    with pytest.raises(InvalidRequest) as e:
        parse_body(BatchCreate, {"input_file_id": "f", "endpoint": "/v1/chat", "completion_window": "24h"})
    assert (e.value.code, e.value.field) == ("unsupported_endpoint", "endpoint")
    # and valid ones parse, `null` meaning absent
    assert parse_body(RetryCreate, {"only": "errored", "completion_window": None}).completion_window is None
    train = parse_job_body({**TRAIN, "base_model": None, "hyperparameters": {"epochs": None, "seed": 1}})
    assert isinstance(train, TrainJobCreate) and train.base_model is None
    assert train.hyperparameters is not None
    assert train.hyperparameters.model_dump(exclude_none=True) == {"seed": 1}


def test_a_bodys_own_fields_are_checked_before_the_options_every_job_takes() -> None:
    # given a predict body with a bad task and a bad priority
    body = {**PREDICT, "task": "translation", "priority": 99, "metadata": "x"}
    # then the task, the body's own field, is the one answer
    assert refusal(body) == ("invalid_value", "task")
    # and among the options, the order they are declared in
    assert refusal({**PREDICT, "priority": 99, "metadata": "x"}) == ("invalid_value", "priority")
