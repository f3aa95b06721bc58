"""Job states: the transition rules (`shared.states`). The compare-and-set writers that enforce them
(`shared.jobs`) are tested in tests/unit/jobs, a module each."""

from __future__ import annotations

import json

import pytest

from inferq.shared.enums import ValueEnum
from inferq.shared.job_types import JobType
from inferq.shared.states import ALLOWED, LIVE, TERMINAL, WORKING, JobStatus, PartStatus, can_move, sources_of

# ---- the rules -----------------------------------------------------------------------------------


def test_terminal_states_lead_nowhere_and_every_live_state_can_end() -> None:
    for status in JobStatus:
        if status in TERMINAL:
            assert ALLOWED[status] == frozenset(), status
        else:
            assert ALLOWED[status] & TERMINAL, f"{status} can never finish"
    assert LIVE == frozenset(JobStatus) - TERMINAL
    assert WORKING <= LIVE


@pytest.mark.parametrize(
    ("src", "dst", "allowed"),
    [
        (JobStatus.QUEUED, JobStatus.RUNNING, True),
        (JobStatus.RUNNING, JobStatus.FINALIZING, True),
        (JobStatus.FINALIZING, JobStatus.SUCCEEDED, True),
        (JobStatus.CANCELLING, JobStatus.CANCELLED, True),
        (JobStatus.QUEUED, JobStatus.SUCCEEDED, False),
        (JobStatus.RUNNING, JobStatus.QUEUED, False),
        (JobStatus.FINALIZING, JobStatus.RUNNING, False),
        (JobStatus.CANCELLING, JobStatus.RUNNING, False),
        (JobStatus.SUCCEEDED, JobStatus.FAILED, False),
        (JobStatus.CANCELLED, JobStatus.QUEUED, False),
    ],
)
def test_can_move_follows_the_table(src: JobStatus, dst: JobStatus, allowed: bool) -> None:
    assert can_move(src, dst) is allowed


def test_sources_of_is_the_inverse_of_the_table() -> None:
    assert sources_of(JobStatus.FINALIZING) == {JobStatus.RUNNING}
    assert sources_of(JobStatus.CANCELLED) == {JobStatus.CANCELLING}
    assert sources_of(JobStatus.QUEUED) == frozenset()
    for dst in JobStatus:
        assert all(can_move(src, dst) for src in sources_of(dst))


@pytest.mark.parametrize("member", [*JobStatus, *PartStatus, *JobType])
def test_a_member_reads_as_its_value_wherever_a_string_is_expected(member: ValueEnum) -> None:
    # given a status or type member, as rows give it
    # when it is written into a message, a log line, JSON or compared with its string
    # then it is the plain value, as the string column held before the enums
    assert f"{member}" == str(member) == member.value
    assert "%s" % member == member.value  # noqa: UP031 (how logging formats its arguments)
    assert json.dumps({"status": member}) == json.dumps({"status": member.value})
    assert member == member.value and {member.value: 1}[member] == 1
