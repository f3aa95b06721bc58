"""Tenant isolation and keys on every `/v1` route, read from the app's URL map so that a new route cannot
be left out: without a valid key every route is 401; tenant B asking for tenant A's ids gets exactly the
404 a missing id gets and changes nothing; no list or other answer of B ever shows A's ids."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from inferq.shared.db import session_scope
from inferq.shared.tenants import revoke_key
from tests.helpers.api_client import ApiClient
from tests.helpers.tenant_resources import TenantResources, job_bodies, make_tenant_resources

pytestmark = pytest.mark.integration

METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH")
# Every path argument of a /v1 route, and A's values for it (a route with another argument fails the test).
ARGUMENTS: dict[str, Callable[[TenantResources], list[str]]] = {
    "file_id": lambda a: [a.input_file, a.training_file, a.batch_file, a.output_file, a.error_file],
    "job_id": lambda a: [a.job, a.train_job, a.evaluate_job],
    "batch_id": lambda a: [a.batch],
    "model": lambda a: [a.model_version, a.model],
}
# Ids of the same shape that exist for no one.
GHOSTS = {
    "file_id": "file_00000000000000000000000000",
    "job_id": "job_00000000000000000000000000",
    "batch_id": "batch_00000000000000000000000000",
    "model": "ghost:1",
}
# What the issue names; each must be among the routes checked.
NAMED = {
    "files": ("GET", "/v1/files/<file_id>"),
    "content": ("GET", "/v1/files/<file_id>/content"),
    "delete file": ("DELETE", "/v1/files/<file_id>"),
    "jobs": ("GET", "/v1/jobs/<job_id>"),
    "results": ("GET", "/v1/jobs/<job_id>/results"),
    "errors": ("GET", "/v1/jobs/<job_id>/errors"),
    "events": ("GET", "/v1/jobs/<job_id>/events"),
    "cancel": ("POST", "/v1/jobs/<job_id>/cancel"),
    "models": ("GET", "/v1/models/<model>"),
    "delete model": ("DELETE", "/v1/models/<model>"),
    "batches": ("GET", "/v1/batches/<batch_id>"),
    "cancel batch": ("POST", "/v1/batches/<batch_id>/cancel"),
}


def v1_routes(api: ApiClient) -> list[tuple[str, Rule]]:
    """(method, rule) of every /v1 route in the app."""
    routes = [
        (method, rule)
        for rule in api.app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") or rule.rule == "/v1"
        for method in sorted(rule.methods or ())
        if method in METHODS
    ]
    assert routes
    return routes


def url(rule: Rule, values: dict[str, str]) -> str:
    path = rule.rule
    for name in rule.arguments:
        path = path.replace(f"<{name}>", values[name]).replace(f"<string:{name}>", values[name])
    return path


def call(api: ApiClient, method: str, path: str, headers: dict[str, str]) -> TestResponse:
    return api.client.open(path, method=method, headers=headers)


def error_of(r: TestResponse) -> dict[str, object]:
    body = r.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def tenants(api: ApiClient, tmp_path: Path) -> Iterator[tuple[TenantResources, TenantResources]]:
    """Tenants A and B, each with one of everything."""
    yield (
        make_tenant_resources(api, "tenant-a", tmp_path / "a"),
        make_tenant_resources(api, "tenant-b", tmp_path / "b"),
    )


def test_every_v1_route_needs_a_live_key(
    api: ApiClient, tenants: tuple[TenantResources, TenantResources]
) -> None:
    # given A's resources and a key of A that was revoked
    a, _ = tenants
    revoked = api.new_key("tenant-a")
    with session_scope(api.settings) as session:
        assert revoke_key(session, revoked) == 1
    first = {name: values(a)[0] for name, values in ARGUMENTS.items()}
    keys = {
        "missing": {},
        "empty": {"Authorization": "Bearer "},
        "not bearer": {"Authorization": f"Basic {a.key}"},
        "unknown": api.auth_headers("iq_" + "x" * 40),
        "revoked": api.auth_headers(revoked),
    }

    # when every /v1 route is called with each of them
    for method, rule in v1_routes(api):
        for what, headers in keys.items():
            r = call(api, method, url(rule, first), headers)

            # then it is a 401 in the error shape with a Bearer challenge
            assert r.status_code == 401, (method, rule.rule, what, r.get_json())
            assert error_of(r)["code"] in ("missing_api_key", "invalid_api_key")
            assert r.headers["WWW-Authenticate"] == "Bearer"


def test_another_tenants_id_is_404_on_every_route_and_changes_nothing(
    api: ApiClient, tenants: tuple[TenantResources, TenantResources]
) -> None:
    # given tenants A and B with one of everything
    a, b = tenants
    with_ids = [(m, r) for m, r in v1_routes(api) if r.arguments]
    unknown = {name for _, rule in with_ids for name in rule.arguments} - set(ARGUMENTS)
    assert not unknown, f"new path arguments {unknown}: add tenant A's values for them to ARGUMENTS"
    assert set(NAMED.values()) <= {(m, r.rule) for m, r in with_ids}
    before = {
        "files": api.client.get("/v1/files?limit=1000", headers=a.headers).get_json()["data"],
        "jobs": api.client.get("/v1/jobs?limit=1000", headers=a.headers).get_json()["data"],
        "models": api.client.get(f"/v1/models/{a.model}", headers=a.headers).get_json(),
    }

    # when B calls every route with an id with each of A's ids (destructive methods included)
    checked = 0
    for method, rule in with_ids:
        (name,) = rule.arguments
        ghost = call(api, method, url(rule, {name: GHOSTS[name]}), b.headers)
        assert ghost.status_code == 404, (method, rule.rule, ghost.get_json())
        for value in ARGUMENTS[name](a):
            r = call(api, method, url(rule, {name: value}), b.headers)

            # then the answer is exactly the one an id that exists for no one gets
            where = (method, rule.rule, value)
            assert r.status_code == 404 or (r.status_code, value) == (400, a.model), (where, r.get_json())
            if r.status_code == 404:
                assert error_of(r) | {"message": ""} == error_of(ghost) | {"message": ""}, where
            assert all(s not in r.get_data(as_text=True) for s in a.secrets() if s != value), where
            checked += 1

    # and A's resources are all still there, unchanged
    assert checked >= 30
    after = {
        "files": api.client.get("/v1/files?limit=1000", headers=a.headers).get_json()["data"],
        "jobs": api.client.get("/v1/jobs?limit=1000", headers=a.headers).get_json()["data"],
        "models": api.client.get(f"/v1/models/{a.model}", headers=a.headers).get_json(),
    }
    assert after == before
    for file_id in ARGUMENTS["file_id"](a):
        assert api.client.get(f"/v1/files/{file_id}/content", headers=a.headers).status_code == 200
    assert api.client.get(f"/v1/jobs/{a.job}/results", headers=a.headers).status_code == 200
    assert api.client.get(f"/v1/batches/{a.batch}", headers=a.headers).get_json()["status"] != "cancelling"


LIST_QUERIES = (
    "",
    "?limit=1000",
    "?purpose=input",
    "?purpose=training",
    "?purpose=batch",
    "?purpose=output",
    "?purpose=errors",
    "?status=succeeded",
    "?status=queued",
    "?type=train",
    "?type=evaluate",
    "?type=batch",
)


def test_no_list_or_other_answer_of_b_shows_anything_of_a(
    api: ApiClient, tenants: tuple[TenantResources, TenantResources]
) -> None:
    # given tenants A and B with one of everything
    a, b = tenants
    lists = [rule.rule for method, rule in v1_routes(api) if method == "GET" and not rule.arguments]
    assert {"/v1/files", "/v1/jobs", "/v1/models", "/v1/batches", "/v1/webhook_secret"} <= set(lists)

    # when B reads every /v1 GET route without an id, with every filter
    for path in lists:
        for query in LIST_QUERIES:
            r = api.client.get(path + query, headers=b.headers)
            if r.status_code == 400:  # a filter this list does not have
                continue
            text = r.get_data(as_text=True)

            # then nothing of A is in it, while the same list of A's shows A's own
            assert r.status_code == 200, (path, query, r.get_json())
            leaked = [s for s in a.secrets() if s in text]
            assert not leaked, (path, query, leaked)
            assert a.model not in json.dumps([m["id"] for m in r.get_json().get("data", [])]), (path, query)
    own = "".join(api.client.get(p, headers=a.headers).get_data(as_text=True) for p in lists)
    assert all(s in own for s in (a.input_file, a.job, a.batch, a.model, a.webhook_secret))


def test_another_tenants_ids_in_a_body_are_404_and_create_nothing(
    api: ApiClient, tenants: tuple[TenantResources, TenantResources]
) -> None:
    # given bodies of every job-creating endpoint naming A's files and model
    a, b = tenants
    bodies = job_bodies(a.input_file, a.training_file, a.batch_file, a.model_version)
    bodies["predict with A's model"] = (
        "/v1/jobs",
        {"type": "predict", "task": "text-classification", "model": a.model, "input_file": b.input_file},
    )
    bodies["train from A's model"] = (
        "/v1/jobs",
        {
            "type": "train",
            "task": "text-classification",
            "base_model": a.model_version,
            "training_file": b.training_file,
            "model_name": "stolen",
        },
    )
    bodies["embeddings with A's model"] = ("/v1/embeddings", {"model": a.model_version, "input": "hi"})
    jobs_of_b = api.client.get("/v1/jobs?limit=1000", headers=b.headers).get_json()["data"]

    # when B submits them
    for kind, (path, body) in bodies.items():
        r = api.client.post(path, headers=b.headers, json=body)

        # then each is a 404 naming the field, and B has no new job
        assert r.status_code == 404, (kind, r.get_json())
        assert error_of(r)["code"] in ("file_not_found", "model_not_found"), kind
    assert api.client.get("/v1/jobs?limit=1000", headers=b.headers).get_json()["data"] == jobs_of_b
