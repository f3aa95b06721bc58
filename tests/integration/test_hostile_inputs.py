"""Hostile request data is a 400 in the error shape, never a 500: JSON nested deeper than any real body,
lone UTF-16 surrogates in strings, integers longer than Python converts, forged cursors, and a
RecursionError or UnicodeError that escapes anywhere in a request."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from inferq.api.request_json import MAX_DEPTH
from inferq.shared.settings import Settings
from inferq.worker.runner import run_part
from tests.helpers.api_client import ApiClient
from tests.helpers.tenant_http import Http
from tests.integration.test_api_errors import error_of
from tests.integration.test_partial_results import planned_job

pytestmark = pytest.mark.integration

JSONL = b'{"id": "r1", "text": "hello"}\n{"id": "r2", "text": "world"}\n'
BATCH_LINE = (
    b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings",'
    b' "body": {"model": "minilm-l6", "input": "hi"}}\n'
)
DEEP = b"[" * 1000 + b"]" * 1000
DEEP_IN_OBJECT = b'{"type": "predict", "metadata": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1001


@pytest.fixture
def headers(api: ApiClient) -> dict[str, str]:
    return api.headers_for("acme")


@pytest.fixture
def job_id(api: ApiClient, headers: dict[str, str]) -> str:
    """A queued predict job of the tenant (no worker runs it)."""
    file_id = api.upload(headers, JSONL).get_json()["id"]
    r = api.submit(headers, type="predict", task="embedding", model="minilm-l6", input_file=file_id)
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def post_raw(api: ApiClient, path: str, headers: dict[str, str], raw: bytes) -> TestResponse:
    return api.client.post(path, headers=headers, data=raw, content_type="application/json")


def assert_400(r: TestResponse, code: str) -> dict[str, Any]:
    assert r.status_code == 400, (r.status_code, r.get_data(as_text=True)[:300])
    error = error_of(r)
    assert error["code"] == code, error
    return error


@pytest.mark.parametrize("raw", [DEEP, DEEP_IN_OBJECT], ids=["array", "object"])
def test_json_nested_a_thousand_deep_is_400_on_every_json_route(
    api: ApiClient, headers: dict[str, str], job_id: str, raw: bytes
) -> None:
    # given the four routes that read a JSON body
    paths = ["/v1/jobs", "/v1/batches", "/v1/embeddings", f"/v1/jobs/{job_id}/retry"]

    for path in paths:
        # when a body nested 1,000 deep is posted (with an Idempotency-Key, so it is hashed too)
        r = post_raw(api, path, {**headers, "Idempotency-Key": "deep"}, raw)

        # then it is a 400 invalid_json that says how deep a body may go
        error = assert_400(r, "invalid_json")
        assert str(MAX_DEPTH) in error["message"], path


def test_json_at_the_depth_limit_is_read_and_one_deeper_is_not(
    api: ApiClient, headers: dict[str, str]
) -> None:
    # given bodies whose metadata is nested to exactly the limit, and one level more
    def nested(depth: int) -> bytes:  # the body object itself is level 1
        return b'{"type": "predict", "metadata": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    # when each is posted
    at_limit = post_raw(api, "/v1/jobs", headers, nested(MAX_DEPTH))
    over = post_raw(api, "/v1/jobs", headers, nested(MAX_DEPTH + 1))

    # then the first is parsed and refused for its content, the second for its depth
    assert error_of(at_limit)["code"] != "invalid_json"
    assert_400(over, "invalid_json")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": "file_x",'
        b' "metadata": {"k": "\\ud800"}}',
        b'{"type": "predict", "metadata": {"\\udfff": "v"}}',
        b'{"type": "predict", "metadata": {"k": "\xed\xa0\x80"}}',
    ],
    ids=["escaped-value", "escaped-key", "raw-bytes"],
)
def test_a_lone_surrogate_in_a_job_body_is_400(api: ApiClient, headers: dict[str, str], raw: bytes) -> None:
    # when a job body with a lone surrogate is posted with an Idempotency-Key (its hash encodes the body)
    r = post_raw(api, "/v1/jobs", {**headers, "Idempotency-Key": "surrogate"}, raw)

    # then it is a 400 invalid_json
    assert_400(r, "invalid_json")


def test_a_lone_surrogate_in_embeddings_and_batches_is_400(
    api: ApiClient, headers: dict[str, str], job_id: str
) -> None:
    # given an embeddings input long enough to be length-checked, and a batch and a retry body
    long_text = "x" * 9000 + "\\ud800"
    bodies = {
        "/v1/embeddings": b'{"model": "minilm-l6", "input": ["' + long_text.encode() + b'"]}',
        "/v1/batches": b'{"input_file_id": "file_x", "endpoint": "/v1/embeddings",'
        b' "completion_window": "24h", "metadata": {"k": "\\udbff"}}',
        f"/v1/jobs/{job_id}/retry": b'{"only": "\\ud800"}',
    }
    for path, raw in bodies.items():
        # when each is posted
        r = post_raw(api, path, {**headers, "Idempotency-Key": "s"}, raw)

        # then it is a 400 invalid_json
        assert_400(r, "invalid_json")


def test_a_retention_days_form_field_of_thousands_of_digits_is_400(
    api: ApiClient, headers: dict[str, str]
) -> None:
    # when a file is uploaded with retention_days longer than Python's int-string limit
    form = {"file": (io.BytesIO(JSONL), "in.jsonl"), "purpose": "input", "retention_days": "9" * 4400}
    r = api.client.post("/v1/files", headers=headers, data=form, content_type="multipart/form-data")

    # then it is a 400 on that field
    error = error_of(r)
    assert r.status_code == 400 and error["field"] == "retention_days" and error["code"] == "invalid_value"


@pytest.mark.parametrize(
    "query",
    [
        "limit=" + "9" * 5000,
        "limit=\u0661\u0660",  # Arabic-Indic digits: int() reads them, the API does not
    ],
)
def test_list_limits_of_thousands_of_digits_are_400(
    api: ApiClient, headers: dict[str, str], query: str
) -> None:
    for path in ("/v1/files", "/v1/jobs", "/v1/batches"):
        # when a list is asked for with such a limit
        r = api.client.get(f"{path}?{query}", headers=headers)

        # then it is a 400 on limit
        assert r.status_code == 400, (path, r.status_code)
        assert error_of(r)["field"] == "limit", path


def test_a_limit_with_thousands_of_leading_zeros_is_its_value(
    api: ApiClient, headers: dict[str, str]
) -> None:
    # when a list is asked for with a limit of 5 written with 5,000 leading zeros
    r = api.client.get(f"/v1/files?limit={'0' * 5000}5", headers=headers)

    # then it is read as 5
    assert r.status_code == 200 and r.get_json()["data"] == []


@pytest.mark.parametrize(
    "raw",
    [
        "0.0.99999999999999999999999",
        "0.0." + "9" * 5000,
        "99999999999.0.0",
        "0.99999999999999999999.0",
        "0.0.-0",
    ],
)
def test_a_forged_results_cursor_is_400(
    api: ApiClient, headers: dict[str, str], job_id: str, raw: str
) -> None:
    # given a cursor this server never gave out, in the cursor's own encoding
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    # when a results page is asked for with it, and a limit of thousands of digits
    r = api.client.get(f"/v1/jobs/{job_id}/results?cursor={cursor}", headers=headers)
    r_limit = api.client.get(f"/v1/jobs/{job_id}/results?limit={'9' * 5000}", headers=headers)

    # then each is a 400 naming its parameter
    assert_400(r, "invalid_cursor")
    assert assert_400(r_limit, "invalid_value")["field"] == "limit"


def test_an_events_cursor_beyond_any_event_id_is_400(
    api: ApiClient, headers: dict[str, str], job_id: str
) -> None:
    # when a job's events are paged from a cursor larger than a database id can be
    r = api.client.get(f"/v1/jobs/{job_id}/events?cursor={'9' * 60}", headers=headers)

    # then it is a 400 invalid_cursor
    assert_400(r, "invalid_cursor")


@pytest.mark.parametrize(
    "exc",
    [
        RecursionError("maximum recursion depth exceeded"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    ],
    ids=["recursion", "encode", "decode"],
)
def test_a_recursion_or_unicode_error_anywhere_is_a_400(api: ApiClient, exc: Exception) -> None:
    # given a route that meets an error only request data can cause
    def hostile() -> str:
        raise exc

    api.app.add_url_rule("/hostile", "hostile", hostile)

    # when it is called
    r = api.client.get("/hostile")

    # then it is a 400 invalid_request, not a 500
    assert_400(r, "invalid_request")


def test_a_forged_cursor_past_the_end_of_a_finished_part_is_400(
    http: Http, worker_settings: Settings, tmp_path: Path
) -> None:
    client, headers = http
    # given a job whose first part has finished (its output object exists)
    job_id, parts, _ = planned_job(client, headers, worker_settings, tmp_path, records=5)
    assert run_part(parts[0], worker_settings) == "done"

    # when its results are asked for from a byte far past the end of that part's output
    cursor = base64.urlsafe_b64encode(f"0.1.{10**12}".encode()).decode().rstrip("=")
    r = client.get(f"/v1/jobs/{job_id}/results?cursor={cursor}", headers=headers)

    # then it is a 400 invalid_cursor, not a storage error
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["code"] == "invalid_cursor"
