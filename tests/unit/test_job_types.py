"""The job types the contract names are the state writer's `JobType`s: one list, two spellings."""

from __future__ import annotations

from inferq.api.contract.objects import JOB_TYPES
from inferq.shared.job_types import JobType


def test_the_contract_lists_exactly_the_job_types_the_rows_hold() -> None:
    # given the contract's literal list and the enum the job rows are read as
    # then they name the same types, in the same order
    assert JOB_TYPES == tuple(t.value for t in JobType)
