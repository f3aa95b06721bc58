"""Fair share: a run_part message is permission to run one inference part; which part runs is decided
here, so one tenant's big job cannot starve another tenant's small one, and priority orders a tenant's
jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from inferq.shared.job_types import JobType
from inferq.shared.jobs.events import record_event
from inferq.shared.jobs.parts import Lease, claim_part
from inferq.shared.models import Job, JobEvent, JobPart, utcnow
from inferq.shared.states import LIVE, WORKING, PartStatus

FAIR_CANDIDATES = 4  # fairest parts tried (compare-and-set) before the message's own part


@dataclass(frozen=True)
class Candidate:
    """A part fair share may run next."""

    part_id: str
    job_id: str
    tenant_id: str
    priority: int
    created_at: datetime  # the job's


FAIR_CLAIM_ROUNDS = (
    8  # claim_fair_part: looks again this often after losing races (each loss is another worker's win)
)


def next_parts(session: Session, limit: int = FAIR_CANDIDATES) -> list[Candidate]:
    """The next fresh part (queued, never attempted) of up to `limit` inference jobs, fairest first.

    Tenants in turn: fewest parts running, then least recently served (the latest part start among its
    inference jobs that have not ended; never served comes first), then the one waiting longest. Within a
    tenant: the highest job priority, then the oldest job; within a job the lowest part index (results
    stream in input order). One query, a row per unfinished job, whose per-job lookups read job_parts by
    job_id (never the history of ended jobs).
    """
    parts = aliased(JobPart)
    of_job = parts.job_id == Job.id
    fresh = and_(of_job, parts.status == PartStatus.QUEUED, parts.attempts == 0)
    rows = session.execute(
        select(
            Job.id,
            Job.tenant_id,
            Job.priority,
            Job.created_at,
            Job.status,
            select(parts.id).where(fresh).order_by(parts.index).limit(1).scalar_subquery(),
            select(func.count()).where(of_job, parts.status == PartStatus.RUNNING).scalar_subquery(),
            select(func.max(parts.started_at)).where(of_job).scalar_subquery(),
        ).where(Job.type != JobType.TRAIN, Job.status.in_(sorted(LIVE)))
    ).tuples()
    shares: dict[str, _Share] = {}
    waiting: list[Candidate] = []
    for job_id, tenant_id, priority, created_at, status, first_fresh, running, started in rows:
        shares.setdefault(tenant_id, _Share(first_job=created_at)).add(int(running or 0), started, created_at)
        if first_fresh is not None and status in WORKING:
            waiting.append(Candidate(first_fresh, job_id, tenant_id, priority, created_at))
    waiting.sort(key=lambda c: (shares[c.tenant_id].key(c.tenant_id), -c.priority, c.created_at, c.job_id))
    return waiting[:limit]


@dataclass
class _Share:
    """What a tenant is getting now: parts running, its latest part start, its oldest unfinished job."""

    first_job: datetime
    running: int = 0
    last_start: datetime | None = None

    def add(self, running: int, started: datetime | None, created_at: datetime) -> None:
        self.running += running
        if started is not None and (self.last_start is None or started > self.last_start):
            self.last_start = started
        self.first_job = min(self.first_job, created_at)

    def key(self, tenant_id: str) -> tuple[int, bool, datetime, datetime, str]:
        never = self.last_start is None
        return (self.running, not never, self.last_start or self.first_job, self.first_job, tenant_id)


def claim_fair_part(
    session: Session, hint_part_id: str, owner: str, lease_seconds: int, *, redelivered: bool = False
) -> Lease | None:
    """Claim the part a run_part message should run now; None: nothing for it to run.

    The message names a part (`hint_part_id`), but is permission to run one part: every part planned,
    released or re-sent has a message of its own, so messages never fall short of the waiting parts, and
    a part run for another part's message leaves its own message for the part that was passed over.
    - The named part was tried before (a retry after a failure, a lapsed lease): run it, as today (the
      retry keeps its backoff, a lost worker's part its redelivery; `next_parts` never offers it).
    - A broker's redelivered copy (`redelivered`) whose part runs under a live lease: nothing, a copy.
    - Otherwise the fairest fresh part (`next_parts`), the next one if another worker won the race,
      then the named part itself. A part run instead of the named one says why in its part_started event
      (`scheduled`), and the named part's job, held back, gets one `held_back` event the first time.
    """
    hint = session.get(JobPart, hint_part_id)
    hint_job = session.get(Job, hint.job_id) if hint is not None else None
    waiting: Job | None = None  # the named part's job, when that part could run now (held back if not)
    if hint is not None and hint_job is not None and hint_job.status in WORKING:
        lapsed = hint.status == PartStatus.RUNNING and (
            hint.lease_expires_at is None or hint.lease_expires_at < utcnow()
        )
        retry = hint.status == PartStatus.QUEUED and hint.attempts > 0
        if hint_job.type is JobType.TRAIN or lapsed or retry:
            return claim_part(session, hint_part_id, owner, lease_seconds)
        if redelivered and hint.status == PartStatus.RUNNING:
            return None
        if hint.status == PartStatus.QUEUED:
            waiting = hint_job
    # Another worker may win the race for a candidate (two idle workers take a job's first two messages
    # at once and both pick its first fresh part): look again, since next_parts offers one part a job and
    # the named part may be the very one just lost. Without this the message is spent on nothing and a
    # part is left without one until the reconciler re-sends it (INFERQ_RESEND_AFTER_SECONDS).
    lost: set[str] = set()
    for _ in range(FAIR_CLAIM_ROUNDS):
        candidates = [c for c in next_parts(session) if c.part_id not in lost]
        if not candidates:
            break
        for candidate in candidates:
            scheduled = None if candidate.part_id == hint_part_id else _scheduled(hint, waiting, candidate)
            lease = claim_part(session, candidate.part_id, owner, lease_seconds, scheduled=scheduled)
            if lease is not None:
                if waiting is not None and candidate.job_id != waiting.id:
                    _held_back(session, waiting, candidate)
                return lease
            lost.add(candidate.part_id)
    return claim_part(session, hint_part_id, owner, lease_seconds) if waiting is not None else None


def _scheduled(hint: JobPart | None, waiting: Job | None, candidate: Candidate) -> dict[str, Any]:
    """Why `candidate` runs for the message of `hint` (never another tenant's ids)."""
    if hint is None or waiting is None:
        return {"scheduled": "spare_message"}  # the named part had run already, or its job stopped
    if candidate.tenant_id != waiting.tenant_id:
        return {"scheduled": "fair_share"}
    if candidate.job_id == waiting.id:
        return {"scheduled": "input_order", "hint_part": hint.index}
    reason = "priority" if candidate.priority > waiting.priority else "job_order"
    return {"scheduled": reason, "hint_job": waiting.id, "hint_part": hint.index}


def _held_back(session: Session, job: Job, candidate: Candidate) -> None:
    """The first time a job's part waits while another job's part runs for its message: one event."""
    seen = session.execute(
        select(JobEvent.id).where(JobEvent.job_id == job.id, JobEvent.kind == "held_back").limit(1)
    ).first()
    if seen is not None:
        return
    if candidate.tenant_id != job.tenant_id:
        record_event(
            session,
            job.id,
            "held_back",
            "another tenant's job runs first (fair share); this job's parts run in turn",
            {"reason": "fair_share"},
        )
        return
    if candidate.priority > job.priority:
        reason, why = "priority", f"job {candidate.job_id} (priority {candidate.priority}) runs first"
    else:
        reason, why = "job_order", f"job {candidate.job_id}, submitted earlier, runs first"
    record_event(
        session,
        job.id,
        "held_back",
        why,
        {"reason": reason, "job": candidate.job_id, "priority": candidate.priority},
    )
