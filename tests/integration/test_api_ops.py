"""Operations endpoints: liveness, readiness on the real servers, Prometheus metrics, and an OpenAPI
document (and its HTML page) that says exactly what the routes are."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from inferq.shared.settings import Settings
from tests.helpers.api_client import ApiClient
from tests.helpers.ports import free_port

pytestmark = pytest.mark.integration

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def test_healthz_needs_nothing(api: ApiClient) -> None:
    # when liveness is asked for, without a key
    r = api.client.get("/healthz")

    # then it is ok
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok"}


def test_readyz_is_200_when_database_broker_and_storage_answer(api: ApiClient) -> None:
    # when readiness is asked for on the real servers
    r = api.client.get("/readyz")

    # then every check passed
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "broker": True,
        "storage": True,
    }


def test_readyz_is_503_naming_the_broker_when_redis_is_a_closed_port(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given an app whose broker URL points at a closed port
    api = make_client(s3_settings.with_overrides(broker_url=f"redis://127.0.0.1:{free_port()}/3"))

    # when readiness is asked for
    r = api.client.get("/readyz")

    # then it is 503, the broker failed and the others passed
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is body["checks"]["storage"]["ok"] is True
    assert body["error"]["code"] == "not_ready"
    assert "broker" in body["error"]["message"]


def test_metrics_count_jobs_by_state_and_requests(api: ApiClient) -> None:
    # given one queued job and a few requests
    headers = api.headers_for()
    file_id = api.upload(headers, b'{"text": "a"}\n').get_json()["id"]
    api.submit(headers, type="predict", task="embedding", model="minilm-l6", input_file=file_id)
    api.client.get("/v1/nope", headers=headers)

    # when the metrics are scraped
    r = api.client.get("/metrics")

    # then they are Prometheus text with jobs by state and request counts by route
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.get_data(as_text=True)
    assert 'inferq_jobs{status="queued"} 1.0' in text
    assert 'inferq_jobs{status="succeeded"} 0.0' in text
    assert "inferq_database_up 1.0" in text
    assert re.search(r'inferq_http_requests_total\{method="POST",route="/v1/jobs",status="202"\} 1\.0', text)
    assert re.search(r'inferq_http_requests_total\{method="GET",route="unmatched",status="404"\} 1\.0', text)
    assert 'inferq_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/files"}' in text


def test_openapi_documents_exactly_the_routes_the_app_has(api: ApiClient) -> None:
    # given the app's routes as (OpenAPI path, method)
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in api.app.url_map.iter_rules()
        for method in rule.methods or ()
        if method.lower() in HTTP_METHODS
    }

    # when the document is fetched
    r = api.client.get("/openapi.json")

    # then it is OpenAPI 3.1 listing those routes and nothing else
    assert r.status_code == 200
    document = r.get_json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == routes
    # and every path parameter it names is declared, every $ref resolves
    schemas = document["components"]["schemas"]
    for path, ops in document["paths"].items():
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path
    for ref in re.findall(r'"#/components/schemas/(\w+)"', r.get_data(as_text=True)):
        assert ref in schemas


def test_docs_is_a_self_contained_page_of_every_endpoint(api: ApiClient) -> None:
    # when the docs are fetched
    r = api.client.get("/docs")

    # then it is HTML naming every documented path, loading nothing from elsewhere
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    page = r.get_data(as_text=True)
    for path in api.client.get("/openapi.json").get_json()["paths"]:
        assert path in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']https?://""", page)
