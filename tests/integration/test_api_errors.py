"""Every failure answers `{"error": {"code", "message", "field"}}`: routing, auth, bodies, dependencies
that are down (503) and bugs (500, logged, no traceback in the body)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import TestResponse

from inferq.api.request_json import MAX_BODY_BYTES
from inferq.shared.settings import Settings
from tests.helpers.api_client import ApiClient
from tests.helpers.ports import free_port

pytestmark = pytest.mark.integration


def error_of(r: TestResponse) -> dict[str, Any]:
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = r.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_an_unknown_route_is_404_in_the_error_shape(api: ApiClient) -> None:
    # when routes that do not exist are asked for, with and without a key
    answers = [api.client.get("/nope"), api.client.get("/v1/nothing", headers=api.headers_for())]

    # then each is a 404 not_found
    for r in answers:
        assert r.status_code == 404
        assert error_of(r)["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/files/%00", "file_not_found"),
        ("/v1/files/file_%00x/content", "file_not_found"),
        ("/v1/files/job_01m8m3hv2atm7sxm06jqtcet1c", "file_not_found"),
        ("/v1/jobs/job_%00x", "job_not_found"),
        ("/v1/jobs/FILE_X/events", "job_not_found"),
        ("/v1/jobs/" + "j" * 300, "job_not_found"),
    ],
)
def test_ids_that_cannot_exist_are_404_like_missing_ones(api: ApiClient, path: str, code: str) -> None:
    # when an id that no server could have made is asked for
    r = api.client.get(path, headers=api.headers_for())

    # then it is the same 404 as a missing id
    assert r.status_code == 404
    assert error_of(r)["code"] == code


@pytest.mark.parametrize("cursor", ["%00", "a%20b", "x" * 101])
def test_a_cursor_that_was_never_given_out_is_400(api: ApiClient, cursor: str) -> None:
    r = api.client.get(f"/v1/files?cursor={cursor}", headers=api.headers_for())
    assert r.status_code == 400
    assert error_of(r) | {"message": ""} == {"code": "invalid_cursor", "field": "cursor", "message": ""}


def test_a_wrong_method_is_405_with_allow(api: ApiClient) -> None:
    # when a route is called with a method it does not have
    r = api.client.put("/v1/files", headers=api.headers_for())

    # then it is a 405 naming the methods it has
    assert r.status_code == 405
    assert error_of(r)["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["Allow"].split(",")}


def test_a_trailing_slash_is_the_same_route(api: ApiClient) -> None:
    # when a list is asked for with a trailing slash
    r = api.client.get("/v1/files/", headers=api.headers_for())

    # then it answers as without it
    assert r.status_code == 200
    assert r.get_json()["data"] == []


@pytest.mark.parametrize(
    "raw", [b"{", b"", b"null", b"[]", b'"predict"', b"\xff\xfe", b"{'type': 'predict'}"]
)
def test_a_body_that_is_not_a_json_object_is_400_invalid_json(api: ApiClient, raw: bytes) -> None:
    # when the job body is malformed or not an object
    r = api.client.post("/v1/jobs", headers=api.headers_for(), data=raw, content_type="application/json")

    # then it is a 400 invalid_json
    assert r.status_code == 400
    assert error_of(r)["code"] == "invalid_json"


def test_a_json_body_over_one_mebibyte_is_413(api: ApiClient) -> None:
    # when a job body is larger than any real one
    body = b'{"metadata": {"k": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    r = api.client.post("/v1/jobs", headers=api.headers_for(), data=body, content_type="application/json")

    # then it is refused as too large
    assert r.status_code == 413
    assert error_of(r)["code"] == "request_too_large"


def test_a_bad_idempotency_key_is_400(api: ApiClient) -> None:
    # when the Idempotency-Key header is too long
    headers = {**api.headers_for(), "Idempotency-Key": "k" * 256}
    r = api.upload(headers, b'{"text": "x"}\n')

    # then it is a 400 naming the header
    assert r.status_code == 400
    assert error_of(r)["field"] == "Idempotency-Key"


def test_a_database_that_is_down_is_503(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given an app whose database is a closed port
    api = make_client(
        s3_settings.with_overrides(
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/inferq"
        )
    )

    # when an authenticated route is called
    r = api.client.get("/v1/files", headers={"Authorization": "Bearer iq_whatever"})

    # then it is a 503 database_unavailable
    assert r.status_code == 503
    assert error_of(r)["code"] == "database_unavailable"


def test_storage_that_refuses_is_503(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given an app whose bucket does not exist
    api = make_client(s3_settings.with_overrides(storage_url="s3://no-such-bucket-for-inferq/x"))

    # when a file is uploaded
    r = api.upload(api.headers_for(), b'{"text": "x"}\n')

    # then it is a 503 storage_unavailable and no file row exists
    assert r.status_code == 503
    assert error_of(r)["code"] == "storage_unavailable"
    assert api.client.get("/v1/files", headers=api.headers_for()).get_json()["data"] == []


def test_a_bug_is_a_logged_500_without_a_traceback(api: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    # given a route that fails in a way nobody planned for
    def broken() -> str:
        raise RuntimeError("secret internal detail")

    api.app.add_url_rule("/broken", "broken", broken)

    # when it is called
    r = api.client.get("/broken")

    # then the client sees a plain 500 and the log has the traceback
    assert r.status_code == 500
    error = error_of(r)
    assert error["code"] == "internal_error"
    assert "secret" not in r.get_data(as_text=True)
    assert "Traceback" not in r.get_data(as_text=True)
    assert any("secret internal detail" in (rec.exc_text or "") for rec in caplog.records)
