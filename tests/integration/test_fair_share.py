"""Fair share: a run_part message runs the fairest waiting part, so one tenant's big job cannot starve
another tenant's small one, and `priority` orders a tenant's own jobs.

The selection (`shared.jobs.next_parts`, `claim_fair_part`) is checked on rows in Postgres and SQLite;
the whole path on Postgres, Redis and moto S3, with the messages taken from Redis in the order they were
sent and run by `worker.runner.run_part` as the Celery task runs them, and once by a real Celery worker.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select

from inferq.api.app import create_app
from inferq.shared import jobs, queue
from inferq.shared.db import get_engine, session_scope
from inferq.shared.ids import new_id
from inferq.shared.jobs import fair_share
from inferq.shared.models import Job, JobEvent, JobPart, Tenant, utcnow
from inferq.shared.settings import Settings
from inferq.shared.states import JobStatus, PartStatus
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.runner import part_ids_of, run_part
from tests.e2e.inputs import write_mixed_input
from tests.helpers.services import delete_all_rows
from tests.helpers.tenant_http import tenant_headers
from tests.helpers.worker_env import QUICK_LEASES
from tests.integration.test_worker_pipeline import submit, upload

pytestmark = pytest.mark.integration

OWNER = "test-worker"
LEASE = 60


# ---- the selection, on rows (Postgres and SQLite) -------------------------------------------------------


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a migrated database: this session's Postgres one (emptied after), or a SQLite one."""
    if request.param == "sqlite":
        yield request.getfixturevalue("embedded_settings")
        return
    settings = Settings.from_env(
        {"INFERQ_DATABASE_URL": request.getfixturevalue("pg_url"), "INFERQ_DATA_DIR": str(tmp_path)}
    )
    try:
        yield settings
    finally:
        delete_all_rows(settings)
        get_engine(settings).dispose()


class Rows:
    """Tenants, jobs and parts written straight into the tables (no files, no model)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tenants: dict[str, str] = {}
        self.clock = utcnow() - timedelta(hours=1)

    def tick(self) -> Any:
        self.clock += timedelta(seconds=1)
        return self.clock

    def job(
        self,
        tenant: str,
        parts: int,
        *,
        priority: int = 0,
        type_: str = "predict",
        status: JobStatus = JobStatus.RUNNING,
    ) -> list[str]:
        """A planned job of `parts` queued parts; returns the part ids in index order."""
        with session_scope(self.settings) as session:
            if tenant not in self.tenants:
                self.tenants[tenant] = new_id("ten")
                session.add(Tenant(id=self.tenants[tenant], name=tenant, created_at=utcnow()))
                session.flush()
            job_id = new_id("job")
            now = self.tick()
            session.add(
                Job(
                    id=job_id,
                    tenant_id=self.tenants[tenant],
                    type=type_,
                    task="embedding",
                    status=status.value,
                    model="minilm-l6:1",
                    priority=priority,
                    created_at=now,
                    updated_at=now,
                    parts_total=parts,
                )
            )
            session.flush()
            ids = [new_id("part") for _ in range(parts)]
            for i, part_id in enumerate(ids):
                session.add(
                    JobPart(
                        id=part_id,
                        job_id=job_id,
                        index=i,
                        byte_start=i * 10,
                        byte_end=i * 10 + 10,
                        first_line=i + 1,
                        first_record=i,
                        records=1,
                        status=PartStatus.QUEUED.value,
                        sent_at=now,
                    )
                )
        return ids

    def claim(self, hint: str, *, redelivered: bool = False) -> str | None:
        """What a run_part message naming `hint` claims (its part id), then that part is done at once."""
        with session_scope(self.settings) as session:
            lease = jobs.claim_fair_part(session, hint, OWNER, LEASE, redelivered=redelivered)
        if lease is None:
            return None
        with session_scope(self.settings) as session:
            assert jobs.complete_part(session, lease, 1, 0, "out", "err") is not None
        return lease.part_id

    def fresh_order(self) -> list[str]:
        with session_scope(self.settings) as session:
            return [c.part_id for c in jobs.next_parts(session, limit=100)]

    def part(self, part_id: str) -> JobPart:
        with session_scope(self.settings) as session:
            part = session.get(JobPart, part_id)
            assert part is not None
            session.expunge(part)
            return part

    def started_events(self, part_ids: list[str]) -> dict[int, dict[str, Any]]:
        """part_started data of the job of `part_ids`, by part index."""
        with session_scope(self.settings) as session:
            job_id = session.execute(select(JobPart.job_id).where(JobPart.id == part_ids[0])).scalar_one()
            return {
                e.data["part"]: e.data
                for e in session.execute(
                    select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "part_started")
                ).scalars()
            }

    def held_back(self, part_ids: list[str]) -> list[dict[str, Any]]:
        with session_scope(self.settings) as session:
            job_id = session.execute(select(JobPart.job_id).where(JobPart.id == part_ids[0])).scalar_one()
            return [
                e.data
                for e in session.execute(
                    select(JobEvent)
                    .where(JobEvent.job_id == job_id, JobEvent.kind == "held_back")
                    .order_by(JobEvent.id)
                ).scalars()
            ]


def test_tenants_take_turns_and_priority_orders_a_tenants_jobs(db: Settings) -> None:
    rows = Rows(db)
    # given: tenant A's big job, then B's small one, then A's urgent job; a training job and a cancelled
    # job whose parts are never offered
    big = rows.job("a", 6)
    small = rows.job("b", 2)
    urgent = rows.job("a", 2, priority=9)
    rows.job("c", 1, type_="train", status=JobStatus.QUEUED)
    rows.job("d", 2, status=JobStatus.CANCELLING)

    # when / then: before anything ran, A (waiting longest) first, its urgent job first, then B; each job's
    # lowest part
    assert rows.fresh_order() == [urgent[0], big[0], small[0]]
    # when: the messages are taken in the order they were sent (the big job's first)
    ran = [rows.claim(hint) for hint in big[:4]]
    # then: tenants alternate; within A the priority-9 job first, then the big one in part order
    assert ran == [urgent[0], small[0], urgent[1], small[1]]
    # and: the rest of the messages run the big job's parts, each once, then nothing is left to run
    # (two more, spare, messages find nothing to run)
    rest = [rows.claim(hint) for hint in big[4:] + small + urgent + [big[0], small[0]]]
    assert rest == [*big, None, None]
    assert all(rows.part(p).lease_token == 1 and rows.part(p).attempts == 1 for p in big + small + urgent)

    # and: each part run for another part's message says why, without another tenant's ids
    assert rows.started_events(small)[0]["scheduled"] == "fair_share"
    assert "hint_part" not in rows.started_events(small)[0]
    first_urgent = rows.started_events(urgent)[0]
    assert (first_urgent["scheduled"], first_urgent["hint_part"]) == ("priority", 0)
    big_events = rows.started_events(big)
    assert [(big_events[i]["scheduled"], big_events[i]["hint_part"]) for i in (0, 1)] == [
        ("input_order", 4),
        ("input_order", 5),
    ]
    assert [big_events[i]["scheduled"] for i in range(2, 6)] == ["spare_message"] * 4
    # and: the big job got one held_back event, the first time it waited
    urgent_job = rows.part(urgent[0]).job_id
    assert rows.held_back(big) == [{"reason": "priority", "job": urgent_job, "priority": 9}]
    assert rows.held_back(small) == []


def test_fewest_running_then_least_recently_served(db: Settings) -> None:
    rows = Rows(db)
    a = rows.job("a", 4)
    b = rows.job("b", 4)
    c = rows.job("c", 4)
    # given: A and B each have a part running (A's started first), C has none
    with session_scope(db) as session:
        assert jobs.claim_part(session, a[0], OWNER, LEASE) is not None
    with session_scope(db) as session:
        assert jobs.claim_part(session, b[0], OWNER, LEASE) is not None
    # then: C first (nothing running), then A (served longest ago), then B
    assert rows.fresh_order() == [c[0], a[1], b[1]]
    # when: B's part is done (B has none running now)
    with session_scope(db) as session:
        part = session.get(JobPart, b[0])
        assert part is not None
        lease = jobs.Lease(b[0], part.job_id, part.lease_token, part.attempts)
        assert jobs.complete_part(session, lease, 1, 0, "o", "e") is not None
    # then: C, then B (nothing running, served), then A (a part running)
    assert rows.fresh_order() == [c[0], b[1], a[1]]


def test_retries_and_broker_copies_keep_their_own_meaning(db: Settings) -> None:
    rows = Rows(db)
    a = rows.job("a", 3)
    # given: A's part 0 failed once and was released (queued, attempts 1): its message comes with backoff
    with session_scope(db) as session:
        lease = jobs.claim_part(session, a[0], OWNER, LEASE)
        assert lease is not None
    with session_scope(db) as session:
        assert jobs.release_part(session, lease, "attempt 1 failed")
    # and: a part of tenant B, who was never served, waits
    b = rows.job("b", 2)
    # then: a retry is never offered to another part's message
    assert a[0] not in rows.fresh_order()
    # when: the retry's own message comes: it runs that part, not B's fairer one
    assert rows.claim(a[0]) == a[0]
    assert rows.part(a[0]).attempts == 2

    # given: B's part 0 runs under a live lease
    with session_scope(db) as session:
        held = jobs.claim_part(session, b[0], "other-worker", LEASE)
        assert held is not None
    # when: the broker redelivers a copy of its message: nothing runs (the copy of a message in work)
    assert rows.claim(b[0], redelivered=True) is None
    # when: another message names it (its part ran for another message): the fairest waiting part runs,
    # A's (no part running) before B's
    assert rows.claim(b[0]) == a[1]
    assert rows.started_events(a)[1]["scheduled"] == "spare_message"
    # and: the part under a live lease is untouched
    assert (rows.part(b[0]).lease_token, rows.part(b[0]).lease_owner) == (1, "other-worker")

    # given: B's part 0's lease lapses (its worker died)
    with session_scope(db) as session:
        part = session.get(JobPart, b[0])
        assert part is not None
        part.lease_expires_at = utcnow() - timedelta(seconds=5)
    # when: its message comes again (redelivered or re-sent): it runs that part, fenced by a new token
    assert rows.claim(b[0], redelivered=True) == b[0]
    assert rows.part(b[0]).lease_token == 2
    # and: the remaining messages run the remaining parts, then find nothing left
    assert [rows.claim(a[1]), rows.claim(a[2]), rows.claim(a[1])] == [a[2], b[1], None]


def test_a_message_that_loses_the_race_for_its_part_runs_the_next_one(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = Rows(db)
    a = rows.job("a", 2)
    # given: two idle workers took the job's two messages at once and both chose part 0 (the fairest);
    # the other worker's claim (with the message naming part 1) committed first
    with session_scope(db) as session:
        stale = jobs.next_parts(session)
    with session_scope(db) as session:
        assert jobs.claim_part(session, a[0], "other-worker", LEASE) is not None
    real_next_parts = jobs.next_parts
    reads = iter([stale])
    monkeypatch.setattr(
        fair_share,
        "next_parts",
        lambda session, limit=jobs.FAIR_CANDIDATES: next(reads, None) or real_next_parts(session, limit),
    )

    # when: this worker's message, the one naming part 0, claims
    claimed = rows.claim(a[0])

    # then: having lost part 0, it looks again and runs part 1 instead of spending the message on nothing
    assert claimed == a[1]
    assert rows.part(a[1]).lease_token == 1


@pytest.mark.parametrize(("value", "on"), [(None, True), ("1", True), ("off", False), ("0", False)])
def test_fair_share_is_on_unless_turned_off(tmp_path: Path, value: str | None, on: bool) -> None:
    env = {"INFERQ_DATA_DIR": str(tmp_path)} | ({"INFERQ_FAIR_SHARE": value} if value is not None else {})
    assert Settings.from_env(env).fair_share is on


# ---- the whole path: real parts, messages from Redis -----------------------------------------------------


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    return make_worker_settings(INFERQ_PART_RECORDS="20", **QUICK_LEASES)


@pytest.fixture
def client(worker_settings: Settings) -> FlaskClient:
    return create_app(worker_settings).test_client()


def planned(
    client: FlaskClient,
    headers: dict[str, str],
    settings: Settings,
    path: Path,
    records: int,
    priority: int = 0,
) -> tuple[str, list[str], list[str]]:
    """An embedding job over `records` sentences, submitted and planned into parts of 20: its id, its
    part ids and its records' ids in input order."""
    path, texts, _ = write_mixed_input(path, records=records, broken_every=10_000)
    file_id = upload(client, headers, path)
    job = submit(client, headers, task="embedding", model="minilm-l6", input_file=file_id, priority=priority)
    job_id = str(job["id"])
    plan_job(job_id, settings)
    return job_id, part_ids_of(settings, job_id), [t[0] for t in texts]


def take_run_part_messages(settings: Settings) -> list[str]:
    """The part ids of the run_part messages waiting in Redis, oldest first (taken off the queue)."""
    client = redis.Redis.from_url(settings.broker_url)
    hints: list[str] = []
    try:
        while (raw := client.rpop(queue.QUEUE_INFERENCE)) is not None:
            assert isinstance(raw, bytes)
            message = json.loads(raw)
            assert message["headers"]["task"] == queue.TASK_RUN_PART
            args, _, _ = json.loads(base64.b64decode(message["body"]))
            hints.append(args[0])
    finally:
        client.close()
    return hints


def job_row(settings: Settings, job_id: str) -> Job:
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def run_messages(settings: Settings, hints: list[str], watch: list[str]) -> list[tuple[str, ...]]:
    """Run each message as the Celery task does (fair share on); finalize a job when its last part is
    done, as the control worker would. Returns the status of each job in `watch` after every message."""
    timeline: list[tuple[str, ...]] = []
    for hint in hints:
        run_part(hint, settings, fair=True)
        for job_id in watch:
            if job_row(settings, job_id).status == JobStatus.FINALIZING.value:
                assert finalize_job(job_id, settings) == "succeeded"
        timeline.append(tuple(job_row(settings, j).status for j in watch))
    return timeline


def results(client: FlaskClient, headers: dict[str, str], job_id: str) -> list[str]:
    r = client.get(f"/v1/jobs/{job_id}/results", headers=headers)
    assert r.status_code == 200
    return [json.loads(line)["id"] for line in r.data.splitlines()]


def events(client: FlaskClient, headers: dict[str, str], job_id: str, kind: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=headers)
    assert r.status_code == 200, r.get_json()
    return [e for e in r.get_json()["data"] if e["kind"] == kind]


def parts_done(settings: Settings, job_id: str) -> int:
    return job_row(settings, job_id).parts_done


def test_a_small_job_submitted_after_a_big_one_finishes_long_before_it(
    client: FlaskClient, worker_settings: Settings, tmp_path: Path
) -> None:
    big_headers = tenant_headers(worker_settings, "big")
    small_headers = tenant_headers(worker_settings, "small")
    # given: tenant "big" submits 200 records (10 parts), then tenant "small" 40 records (2 parts)
    big, big_parts, big_ids = planned(client, big_headers, worker_settings, tmp_path / "big.jsonl", 200)
    small, small_parts, small_ids = planned(
        client, small_headers, worker_settings, tmp_path / "small.jsonl", 40
    )
    assert (len(big_parts), len(small_parts)) == (10, 2)
    hints = take_run_part_messages(worker_settings)
    assert hints == big_parts + small_parts  # first in, first out: every big part's message first

    # when: one worker takes the messages in that order
    timeline = run_messages(worker_settings, hints, [big, small])

    # then: the small job succeeded after 4 messages, with 2 of the big job's 10 parts done
    first_done = next(i for i, (_, s) in enumerate(timeline) if s == "succeeded")
    assert first_done == 3 and timeline[first_done][0] == "running"
    assert timeline[-1] == ("succeeded", "succeeded")
    # and: every record of both jobs once, in input order
    assert results(client, small_headers, small) == small_ids
    assert results(client, big_headers, big) == big_ids
    for job_id, total in ((big, 200), (small, 40)):
        job = job_row(worker_settings, job_id)
        assert (job.completed, job.failed, job.parts_done) == (total, 0, total // 20)
    # and: no part ran twice (one claim, one token each), and each start says why it ran out of turn
    with session_scope(worker_settings) as session:
        parts = session.execute(select(JobPart).where(JobPart.job_id.in_([big, small]))).scalars().all()
        assert all((p.status, p.attempts, p.lease_token) == ("done", 1, 1) for p in parts)
    started = events(client, small_headers, small, "part_started")
    assert [e["data"].get("scheduled") for e in started] == ["fair_share", "fair_share"]
    assert all("hint_part" not in e["data"] for e in started)  # nothing of the other tenant's job
    big_started = events(client, big_headers, big, "part_started")
    assert len(big_started) == 10
    assert [e["data"]["part"] for e in big_started[:2]] == [0, 1]
    held = events(client, big_headers, big, "held_back")
    assert len(held) == 1 and held[0]["data"] == {"reason": "fair_share"}


def test_priority_orders_one_tenants_jobs_and_spare_messages_run_what_waits(
    client: FlaskClient, worker_settings: Settings, tmp_path: Path
) -> None:
    headers = tenant_headers(worker_settings, "acme")
    # given: a priority-0 job of 4 parts, then a priority-9 job of 2 parts, same tenant
    low, low_parts, _ = planned(client, headers, worker_settings, tmp_path / "low.jsonl", 80)
    high, high_parts, high_ids = planned(client, headers, worker_settings, tmp_path / "high.jsonl", 40, 9)
    hints = take_run_part_messages(worker_settings)
    assert hints == low_parts + high_parts

    # when: the first two messages (both the low job's) run
    timeline = run_messages(worker_settings, hints[:2], [low, high])

    # then: they ran the high-priority job, which succeeded before any low part started
    assert timeline[-1] == ("running", "succeeded")
    assert results(client, headers, high) == high_ids
    assert events(client, headers, low, "part_started") == []
    started = events(client, headers, high, "part_started")
    assert [(e["data"]["scheduled"], e["data"]["hint_part"]) for e in started] == [
        ("priority", 0),
        ("priority", 1),
    ]
    held = events(client, headers, low, "held_back")
    assert len(held) == 1 and held[0]["data"] == {"reason": "priority", "job": high, "priority": 9}

    # when: the rest arrive, the high job's own messages among them: their parts are done, so each runs
    # the next waiting part instead
    run_messages(worker_settings, hints[2:], [low, high])

    # then: every low part ran once, two of them for the high job's spare messages
    low_started = events(client, headers, low, "part_started")
    assert sorted(e["data"]["part"] for e in low_started) == [0, 1, 2, 3]
    assert [e["data"]["scheduled"] for e in low_started[2:]] == ["spare_message", "spare_message"]
    job = job_row(worker_settings, low)
    assert (job.status, job.completed, job.parts_done) == ("succeeded", 80, 4)


def test_a_celery_worker_runs_the_small_job_first(
    client: FlaskClient, worker_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    big_headers = tenant_headers(worker_settings, "big")
    small_headers = tenant_headers(worker_settings, "small")
    # given: both jobs planned (their run_part messages wait in Redis, the big job's first); the submit's
    # plan messages are dropped, the plans are made
    big, big_parts, _ = planned(client, big_headers, worker_settings, tmp_path / "big.jsonl", 200)
    small, _, _ = planned(client, small_headers, worker_settings, tmp_path / "small.jsonl", 40)
    redis.Redis.from_url(worker_settings.broker_url).delete(queue.QUEUE_CONTROL)

    # when: a Celery worker starts and takes the messages
    request.getfixturevalue("celery_worker")
    deadline = time.monotonic() + 240
    while job_row(worker_settings, big).status != "succeeded":
        assert time.monotonic() < deadline, job_row(worker_settings, big).status
        time.sleep(0.3)

    # then: the small job finished while most of the big job's parts had not (its finalize message
    # waits its turn on the control queue, so a part or two of the big job may finish first)
    small_end = job_row(worker_settings, small).finished_at
    assert small_end is not None
    with session_scope(worker_settings) as session:
        big_finished = sorted(
            p.finished_at
            for p in session.execute(select(JobPart).where(JobPart.job_id == big)).scalars()
            if p.finished_at is not None
        )
    assert len(big_finished) == len(big_parts) == 10
    assert small_end < big_finished[5]
    assert [e["data"].get("scheduled") for e in events(client, small_headers, small, "part_started")] == [
        "fair_share",
        "fair_share",
    ]
