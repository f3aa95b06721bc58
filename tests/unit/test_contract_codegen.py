"""The light client's types are generated from the contract models and checked in: the file is never
stale, the client imports no pydantic, and the client's dataclasses only read fields the contract has."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inferq import client, contract_types
from inferq.api.contract import codegen

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_client_types_are_what_the_models_generate() -> None:
    # given the generated module as checked in
    checked_in = (ROOT / "inferq" / "contract_types.py").read_text(encoding="utf-8")
    # when the contract models render it again
    fresh = codegen.render()
    # then nothing changed (else: PYTHONPATH=. python -m inferq.api.contract.codegen)
    assert checked_in == fresh, "inferq/contract_types.py is stale: run python -m inferq.api.contract.codegen"


def test_the_light_client_imports_no_pydantic() -> None:
    # when the client and its types are imported in a fresh interpreter
    code = "import sys, inferq.client, inferq.contract_types; print('pydantic' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=None
    )
    # then pydantic was never loaded
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("dataclass", "typed_dict"),
    [
        (client.Job, contract_types.Job),
        (client.FileObject, contract_types.File),
        (client.Progress, contract_types.Progress),
        (client.JobError, contract_types.JobError),
    ],
)
def test_each_client_dataclass_reads_only_contract_fields(dataclass: Any, typed_dict: Any) -> None:
    # given a dataclass of the client and the generated type of the same object
    fields = {f.name for f in dataclasses.fields(dataclass)} - {"raw"}
    # then every field the client exposes is a field of the contract's object
    assert fields <= set(typed_dict.__annotations__), fields - set(typed_dict.__annotations__)


def test_every_job_body_the_client_builds_is_a_job_create() -> None:
    # given the job types of the contract
    bodies = contract_types.JobCreate.__args__  # type: ignore[attr-defined]
    # then the union names predict, train and evaluate bodies, each with its own `type`
    assert {b.__name__ for b in bodies} == {"PredictJobCreate", "TrainJobCreate", "EvaluateJobCreate"}
