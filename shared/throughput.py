"""How fast a job is going: records/s and tokens/s over the last minute, ETA, padding waste, workers.

Read from the part rows the workers already keep up to date (heartbeats publish each running part's
progress; finished parts carry their stats), so measuring costs one small query and writes nothing.
A part's records are spread evenly over the time it ran; the window's rate is what fell inside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from inferq.shared.models import Job, JobPart, utcnow
from inferq.shared.states import PartStatus

WINDOW_SECONDS = 60.0

# Built once (every poll of a working job runs it): the job's parts that started and had not finished
# before the window began.
_PARTS_IN_WINDOW = select(
    JobPart.status,
    JobPart.started_at,
    JobPart.finished_at,
    JobPart.completed,
    JobPart.failed,
    JobPart.reported_completed,
    JobPart.reported_failed,
    JobPart.stats,
    JobPart.lease_owner,
).where(
    JobPart.job_id == bindparam("job_id"),
    JobPart.started_at.is_not(None),
    or_(JobPart.finished_at.is_(None), JobPart.finished_at >= bindparam("window_start")),
)


@dataclass(frozen=True)
class PartSample:
    started_at: datetime
    finished_at: datetime | None  # None: still running
    records: int  # done (completed + failed) so far
    tokens: int | None  # known once the part is done
    padded_tokens: int | None
    worker: str | None


def _overlap(start: datetime, end: datetime, window_start: datetime) -> float:
    return max(0.0, (end - max(start, window_start)).total_seconds())


def measure(
    samples: Iterable[PartSample],
    *,
    job_started_at: datetime | None,
    remaining: int | None,
    now: datetime,
    window: float = WINDOW_SECONDS,
) -> dict[str, Any]:
    """Rates over the last `window` seconds (or since the job started, if that is shorter)."""
    window_start = now - timedelta(seconds=window)
    span = window if job_started_at is None else min(window, (now - job_started_at).total_seconds())
    records = tokens_done = records_tokenized = 0.0
    tokens_seen = padded_seen = 0
    workers: set[str] = set()
    for part in samples:
        end = part.finished_at or now
        ran = max((end - part.started_at).total_seconds(), 1e-3)
        share = min(1.0, _overlap(part.started_at, end, window_start) / ran)
        records += part.records * share
        if part.finished_at is None and part.worker:
            workers.add(part.worker)
        if part.tokens is not None:
            tokens_done += part.tokens * share
            records_tokenized += part.records * share
            tokens_seen += part.tokens
            padded_seen += part.padded_tokens or 0
    rate = records / span if span > 0 else 0.0
    # Running parts report records, not tokens: count them at the finished parts' tokens per record.
    tokens_per_record = tokens_done / records_tokenized if records_tokenized else None
    token_rate = rate * tokens_per_record if tokens_per_record is not None else None
    eta = remaining / rate if remaining is not None and rate > 0 else None
    return {
        "window_seconds": round(span, 1),
        "records_per_second": round(rate, 2),
        "tokens_per_second": None if token_rate is None else round(token_rate, 1),
        "eta_seconds": None if eta is None else round(eta, 1),
        "padding_ratio": round((padded_seen - tokens_seen) / padded_seen, 4) if padded_seen else None,
        "running_workers": sorted(workers),
    }


def live_throughput(session: Session, job: Job, now: datetime | None = None) -> dict[str, Any]:
    """The job's rates over the last minute, from its parts that ran within it."""
    now = now or utcnow()
    window_start = now - timedelta(seconds=WINDOW_SECONDS)
    rows = session.execute(_PARTS_IN_WINDOW, {"job_id": job.id, "window_start": window_start}).all()
    samples = []
    for row in rows:
        if row.started_at is None:
            continue
        done = row.status == PartStatus.DONE and row.finished_at is not None
        stats = row.stats or {}
        samples.append(
            PartSample(
                started_at=row.started_at,
                finished_at=row.finished_at if done else None,
                records=(row.completed + row.failed)
                if done
                else (row.reported_completed + row.reported_failed),
                tokens=int(stats["tokens"]) if done and "tokens" in stats else None,
                padded_tokens=int(stats["padded_tokens"]) if done and "padded_tokens" in stats else None,
                worker=row.lease_owner,
            )
        )
    remaining = None if job.total is None else max(0, job.total - job.completed - job.failed)
    return measure(samples, job_started_at=job.started_at, remaining=remaining, now=now)


def overall_throughput(job: Job) -> dict[str, Any] | None:
    """A finished prediction job's average rates over its whole run (start to finish)."""
    if job.started_at is None or job.finished_at is None:
        return None
    seconds = (job.finished_at - job.started_at).total_seconds()
    if seconds <= 0:
        return None
    metrics = job.metrics or {}
    tokens = metrics.get("tokens")
    return {
        "window_seconds": round(seconds, 1),
        "records_per_second": round((job.completed + job.failed) / seconds, 2),
        "tokens_per_second": round(float(tokens) / seconds, 1) if isinstance(tokens, (int, float)) else None,
        "eta_seconds": 0.0,
        "padding_ratio": metrics.get("padding_ratio"),
        "running_workers": [],
    }
