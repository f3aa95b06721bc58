"""Job and part states, and which transitions are allowed. Pure data: shared.jobs enforces it."""

from __future__ import annotations

from inferq.shared.enums import ValueEnum


class JobStatus(ValueEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINALIZING = "finalizing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PartStatus(ValueEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # gave up after max attempts; its records are in the error file
    SKIPPED = "skipped"  # never ran: the job was cancelled or expired first


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)
LIVE: frozenset[JobStatus] = frozenset(JobStatus) - TERMINAL

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.FAILED, JobStatus.EXPIRED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.FINALIZING, JobStatus.CANCELLING, JobStatus.FAILED, JobStatus.EXPIRED}
    ),
    JobStatus.FINALIZING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLING, JobStatus.EXPIRED}
    ),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED, JobStatus.EXPIRED, JobStatus.FAILED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
}

# States whose jobs still need their parts run.
WORKING: frozenset[JobStatus] = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


def can_move(src: JobStatus, dst: JobStatus) -> bool:
    return dst in ALLOWED[src]


def sources_of(dst: JobStatus) -> frozenset[JobStatus]:
    return frozenset(s for s, targets in ALLOWED.items() if dst in targets)
