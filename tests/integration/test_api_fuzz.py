"""Fuzzing: schemathesis generates requests for every operation of `/openapi.json` (valid and invalid
bodies, parameters and headers) and sends them with a valid key to the real app (WSGI) on Postgres,
Redis and the moto S3 server. No answer may be a 500, and every answer must be what the document
says: a documented status code, its content type, its headers and a body that fits its schema.

The document is generated from the validators' own models (api.contract), so schemathesis also checks
that they agree: data the schema calls valid is never refused for its shape (`positive_data_acceptance`,
see `contract_acceptance` for the refusals a schema cannot foresee), and data it calls invalid is
never accepted (`negative_data_rejection`, on cases generated in negative mode).

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
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.api_client import ApiClient
from tests.helpers.tenant_resources import TenantResources, make_tenant_resources

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_EXAMPLES = 25
# Refusals of schema-valid data that no schema can foresee: what needs the database or the tenant's
# rows (the model's task, the file's purpose and fields, a model's own max_length bounds, a training
# family's hyperparameters, built-in model names, a batch file's lines), the operator's webhook policy,
# rules across fields (params.explain by task), the completion window's range (its pattern cannot say
# 1 minute to 30 days), cursors (opaque: only those the API gave out are valid), and an upload's
# content (the schema calls the file part a string; only JSONL, CSV or Parquet records of UTF-8 text
# are a file). Any other 4xx on schema-valid data is a disagreement between the document and the
# validators, and fails.
EXPECTED_REFUSALS = {
    "model_task_mismatch",
    "invalid_file_purpose",
    "invalid_file_format",
    "missing_field",
    "no_valid_requests",
    "unsupported_param",
    "version_required",
    "invalid_cursor",
    # the upload's content
    "unsupported_file_type",
    "unsupported_content_type",
    "invalid_encoding",
    "invalid_csv_header",
    "empty_file",
    "no_valid_records",
    "line_too_long",
    "too_many_records",
}
EXPECTED_FIELD_REFUSALS = {
    ("invalid_request", "model"),  # a name the registry cannot parse
    ("invalid_request", "base_model"),
    ("invalid_value", "model_name"),  # a built-in's name
    ("invalid_value", "webhook_url"),  # the operator's policy (public addresses, https)
    ("invalid_value", "params.max_length"),  # the model's own bounds
    ("invalid_value", "hyperparameters.max_length"),
    ("invalid_value", "completion_window"),  # 1 minute to 30 days
    ("invalid_value", "dry_run"),  # dry_run applies to predict jobs only
    ("invalid_value", "merged"),  # merged results are not paged with cursor/limit
    ("invalid_dimensions", "dimensions"),  # only the model's own size
}


def contract_acceptance(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """`positive_data_acceptance`, except the refusals `EXPECTED_REFUSALS` documents."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise
        field = str(error.get("field") or "")
        if error.get("code") in EXPECTED_REFUSALS or (error.get("code"), field) in EXPECTED_FIELD_REFUSALS:
            return None
        if error.get("code") == "unknown_field" and field.startswith("hyperparameters."):
            return None  # a setting the base model's training family cannot use
        raise


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    contract_acceptance,
]


def contract_rejection(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """`negative_data_rejection` for request bodies, the contract models' concern. Excluded: negated
    query parameters and headers that the API ignores by design (an unknown query parameter is ignored,
    as HTTP APIs do; a negated Authorization header is replaced by the tenant's real key)."""
    try:
        return negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData:
        data = case.meta.phase.data if case.meta is not None else None
        locations = {getattr(data, "parameter_location", None)}
        locations |= {m.parameter_location for m in getattr(data, "mutations", ())}
        if ParameterLocation.BODY in locations:
            raise
        return None


NEGATIVE_CHECKS = [not_a_server_error, contract_rejection]


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


@pytest.mark.parametrize(
    ("mode", "checks"),
    [(GenerationMode.POSITIVE, CHECKS), (GenerationMode.NEGATIVE, NEGATIVE_CHECKS)],
    ids=["positive", "negative"],
)
def test_no_request_gets_a_500_or_an_undocumented_answer(
    api: ApiClient, fuzz_tenant: TenantResources, mode: GenerationMode, checks: list[Any]
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

    # when every operation is sent MAX_EXAMPLES generated requests (valid data, or invalid data)
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)

        @given(case=strategy, real=st.integers(min_value=0, max_value=len(reals) * 2))
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
            case.call_and_validate(headers=fuzz_tenant.headers, checks=checks)

        try:
            run()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Unsatisfiable:  # negative mode: the operation has nothing to negate (no parameters)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except BaseException as e:  # a failure group of this operation; all are reported together
            failures[operation.label] = f"{type(e).__name__}: {e}"[:3000]

    # then none answered a 500 or anything the document does not describe; valid data was accepted
    # (or refused for a reason EXPECTED_REFUSALS documents) and invalid data refused
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert len(calls) >= (10 if mode is GenerationMode.POSITIVE else 5) * len(operations)


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
