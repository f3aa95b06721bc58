"""Fuzzing: schemathesis generates requests for every operation of `/openapi.json` (valid and invalid
bodies, parameters and headers) and sends them with a valid key to the real app (WSGI) on Postgres,
Redis and the moto S3 server. No answer may be a 500, and every answer must be what the document
says: a documented status code, its content type, its headers and a body that fits its schema.

Schema-driven generation never writes what an attacker sends, so every operation also gets explicit
hostile cases (`hostile_cases`): raw JSON bodies nested 1,000 deep, lone UTF-16 surrogates (escaped and
as raw bytes) and integers of thousands of digits; every query and path parameter and the upload form's
`retention_days` of 5,000 digits; and forged result cursors. None may answer a 5xx.

Bounded and deterministic: a fixed number of examples per operation, derandomized generation, no
shrinking; the tenant owns one of everything (files, jobs, batches, a model) so that reads and
deletes also meet real rows.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.api_client import ApiClient
from tests.helpers.tenant_resources import TenantResources, make_tenant_resources

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_tenant(api: ApiClient, tmp_path: Path) -> TenantResources:
    return make_tenant_resources(api, "fuzz", tmp_path / "model")


# Path parameters and body fields that name the tenant's resources, and where the real values come from.
ID_FIELDS = {
    "file_id": ("input_file", "training_file", "batch_file", "output_file", "error_file"),
    "input_file": ("input_file", "training_file", "batch_file"),
    "training_file": ("training_file", "input_file"),
    "validation_file": ("training_file",),
    "input_file_id": ("batch_file", "input_file"),
    "job_id": ("job", "train_job", "evaluate_job"),
    "batch_id": ("batch",),
    "model": ("model_version", "model"),
    "base_model": ("model_version",),
}


def real_ids(tenant: TenantResources) -> dict[str, list[str]]:
    return {name: [getattr(tenant, attr) for attr in attrs] for name, attrs in ID_FIELDS.items()}


def with_real_ids(case: schemathesis.Case, reals: dict[str, list[str]], choice: int) -> None:
    """In about half of the cases, put one of the tenant's real ids where the request names a resource,
    so that answers about real rows (file objects, bytes, events, cancels, deletes) are checked too."""
    if choice % 2:
        return
    for params in (case.path_parameters, case.body if isinstance(case.body, dict) else None):
        for name in list(params or ()):
            if name in reals:
                values = reals[name]
                params[name] = values[choice // 2 % len(values)]  # type: ignore[index]


def test_no_request_gets_a_500_or_an_undocumented_answer(
    api: ApiClient, fuzz_tenant: TenantResources
) -> None:
    # given the app's own OpenAPI document, loaded over WSGI, and a valid key of a tenant with data
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "every operation of the document loads"
    assert len(operations) >= 20
    failures: dict[str, str] = {}
    reals = real_ids(fuzz_tenant)
    calls: list[int] = []

    # when every operation is sent MAX_EXAMPLES generated requests (valid and invalid data)
    for operation in operations:

        @given(case=operation.as_strategy(), real=st.integers(min_value=0, max_value=len(reals) * 2))
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case, real: int) -> None:
            calls.append(1)
            with_real_ids(case, reals, real)
            case.call_and_validate(headers=fuzz_tenant.headers, checks=CHECKS)

        try:
            run()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # a failure group of this operation; all are reported together
            failures[operation.label] = f"{type(e).__name__}: {e}"[:3000]

    # then none answered a 500 or anything the document does not describe
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert len(calls) >= 10 * len(operations)


HUGE_INT = "9" * 5000  # past Python's 4,300-digit int-string limit
HOSTILE_BODIES = {
    "deep-array": b"[" * 1000 + b"]" * 1000,
    "deep-object": b'{"a": ' * 1000 + b"1" + b"}" * 1000,
    "deep-in-field": b'{"type": "predict", "metadata": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1001,
    "escaped-surrogate": b'{"type": "predict", "model": "\\ud800", "metadata": {"\\udfff": "\\udbff"}}',
    "raw-surrogate": b'{"type": "predict", "model": "\xed\xa0\x80", "input": ["\xed\xb0\x80"]}',
    "surrogate-in-long-input": b'{"model": "minilm-l6", "input": ["' + b"x" * 9000 + b'\\ud800"]}',
    "huge-int": b'{"type": "predict", "priority": '
    + HUGE_INT.encode()
    + b', "params": {"max_length": '
    + HUGE_INT.encode()
    + b"}}",
    "huge-exponent": b'{"priority": 1e999999, "retention_days": -1e400}',
}
FORGED_CURSORS = [
    base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    for raw in ("0.0.99999999999999999999999", "0.0." + HUGE_INT, "99999999999.0.0", "a.b.c", "1.2")
]


def _named(params: Any) -> list[str]:
    return [p.name for p in params]


def hostile_cases(operation: Any, reals: dict[str, list[str]]) -> Iterator[tuple[str, schemathesis.Case]]:
    """(name, case) of each hostile request for one operation; path parameters are real ids unless the
    case is about them."""
    path = {name: (reals.get(name) or ["x"])[0] for name in _named(operation.path_parameters)}
    media_types = {alternative.media_type for alternative in operation.body}
    if "application/json" in media_types:
        for name, raw in HOSTILE_BODIES.items():
            yield name, operation.Case(path_parameters=path, body=raw, media_type="application/json")
    if "multipart/form-data" in media_types:
        form = {"file": b'{"text": "x"}\n', "purpose": "input", "retention_days": HUGE_INT}
        yield (
            "form-huge-int",
            operation.Case(path_parameters=path, body=form, media_type="multipart/form-data"),
        )
    for name in _named(operation.query):
        yield f"query-{name}-huge-int", operation.Case(path_parameters=path, query={name: HUGE_INT})
        if name == "cursor":
            for n, cursor in enumerate(FORGED_CURSORS):
                yield f"query-cursor-forged-{n}", operation.Case(path_parameters=path, query={name: cursor})
    for name in path:
        yield f"path-{name}-huge-int", operation.Case(path_parameters={**path, name: HUGE_INT})


def test_hostile_data_never_gets_a_5xx(api: ApiClient, fuzz_tenant: TenantResources) -> None:
    # given the app's own OpenAPI document and a valid key of a tenant with data
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    reals = real_ids(fuzz_tenant)
    failures: dict[str, str] = {}
    sent: set[str] = set()

    # when every operation is sent the hostile cases that fit it
    for operation in operations:
        for name, case in hostile_cases(operation, reals):
            sent.add(name)
            try:
                # an Idempotency-Key, so that creating routes hash the body too
                headers = {**fuzz_tenant.headers, "Idempotency-Key": f"hostile-{len(sent)}"}
                case.call_and_validate(headers=headers, checks=[not_a_server_error])
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:
                failures[f"{operation.label} {name}"] = f"{type(e).__name__}: {e}"[:2000]

    # then none was answered with a 5xx
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert {*HOSTILE_BODIES, "form-huge-int", "query-limit-huge-int", "query-cursor-forged-0"} <= sent
