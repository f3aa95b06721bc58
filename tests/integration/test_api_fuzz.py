"""Fuzzing: schemathesis generates requests for every operation of `/openapi.json` (valid and invalid
bodies, parameters and headers) and sends them with a valid key to the real app (WSGI) on Postgres,
Redis and the moto S3 server. No answer may be a 500, and every answer must be what the document
says: a documented status code, its content type, its headers and a body that fits its schema.

Bounded and deterministic: a fixed number of examples per operation, derandomized generation, no
shrinking; the tenant owns one of everything (files, jobs, batches, a model) so that reads and
deletes also meet real rows.
"""

from __future__ import annotations

from pathlib import Path

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

from tests.conftest import ApiClient
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
