"""The reconciler timer of every worker (worker/reconcile_timer.py) on real servers: it re-sends a part
whose holder died and records the run; timers of several workers run it one at a time; a database
error is logged and the next turn runs; a run moments after another is skipped."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from inferq.shared import queue
from inferq.shared.db import get_engine, read_scope, session_scope
from inferq.shared.models import JobPart, utcnow
from inferq.shared.reconciler_state import read_last_run, record_run
from inferq.shared.settings import Settings
from inferq.worker import reconcile_timer
from inferq.worker.reconcile_timer import ReconcileTimer, run_if_due
from inferq.worker.reconciler import ReconcileReport
from tests.helpers.services import delete_all_rows
from tests.helpers.tenant_http import Http

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


@pytest.fixture
def running_timers() -> Iterator[Callable[[Settings, str], ReconcileTimer]]:
    """``start(settings, name)``: a started timer; every one is stopped after the test."""
    timers: list[ReconcileTimer] = []

    def start(settings: Settings, name: str) -> ReconcileTimer:
        timer = ReconcileTimer(settings, name)
        timers.append(timer)
        timer.start()
        return timer

    yield start
    for timer in timers:
        timer.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A migrated database of each kind with a reconcile interval of 1 s; rows deleted after."""
    if request.param == "sqlite":
        base: Settings = request.getfixturevalue("embedded_settings")
    else:
        url = request.getfixturevalue("pg_url")
        base = Settings.from_env({"INFERQ_DATABASE_URL": url, "INFERQ_DATA_DIR": str(tmp_path)})
    settings = base.with_overrides(reconcile_interval_seconds=1)
    try:
        yield settings
    finally:
        delete_all_rows(settings)
        get_engine(settings).dispose()


def test_the_timer_resends_a_part_whose_holder_died_and_records_the_run(
    http: Http, worker_settings: Settings, tmp_path: Path, running_timers: Callable[..., ReconcileTimer]
) -> None:
    # given: a planned job whose first part ran under a worker that died: lease lapsed, message gone
    client, headers = http
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "text": f"text {i}"}) + "\n" for i in range(60)))
    r = client.post(
        "/v1/files", headers=headers, data={"purpose": "input", "file": (path.open("rb"), path.name)}
    )
    body = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": r.get_json()["id"]}
    job = client.post("/v1/jobs", headers=headers, json=body).get_json()
    from inferq.worker.planner import plan_job
    from inferq.worker.runner import part_ids_of

    plan_job(job["id"], worker_settings)
    lost = part_ids_of(worker_settings, job["id"])[0]
    long_ago = utcnow() - timedelta(seconds=worker_settings.lease_seconds * 2)
    with session_scope(worker_settings) as session:
        session.execute(
            update(JobPart)
            .where(JobPart.id == lost)
            .values(status="running", lease_owner="gone:1", lease_expires_at=long_ago, sent_at=long_ago)
        )
    broker = redis.Redis.from_url(worker_settings.broker_url)
    broker.flushdb()

    # when: a worker's reconciler timer runs (no beat anywhere)
    running_timers(worker_settings.with_overrides(reconcile_interval_seconds=1), "w1@test:1")

    # then: the lost part's message is back in the inference queue, its row says when it was sent
    wait_for(lambda: broker.llen(queue.QUEUE_INFERENCE) >= 1, 15, "the re-sent run_part message")
    message = json.loads(broker.lrange(queue.QUEUE_INFERENCE, 0, -1)[0])
    assert message["headers"]["task"] == queue.TASK_RUN_PART and lost in message["headers"]["argsrepr"]
    with session_scope(worker_settings) as session:
        part = session.get(JobPart, lost)
        assert part is not None and part.sent_at is not None and part.sent_at > long_ago
    # and: the run is on record, with who ran it
    with read_scope(worker_settings) as session:
        last = wait_for(lambda: read_last_run(session).at and read_last_run(session), 5, "the recorded run")
    assert last.by == "w1@test:1" and last.age_seconds(utcnow()) < 10


def test_timers_of_several_workers_run_the_reconciler_one_at_a_time(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch, running_timers: Callable[..., ReconcileTimer]
) -> None:
    # given: a reconcile that takes a while and counts how many run at once
    lock = threading.Lock()
    state = {"now": 0, "most": 0, "runs": 0}

    def slow_reconcile(settings: Settings) -> ReconcileReport:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
            state["runs"] += 1
        return ReconcileReport()

    monkeypatch.setattr(reconcile_timer, "reconcile", slow_reconcile)

    # when: three workers' timers tick every second for a few seconds
    started = time.monotonic()
    for i in range(3):
        running_timers(db_settings, f"w{i}@test:{i}")
    wait_for(lambda: state["runs"] >= 4, 20, "four reconciler runs")
    elapsed = time.monotonic() - started

    # then: never two at once, and not three runs a second (runs < half an interval apart are skipped)
    assert state["most"] == 1
    assert state["runs"] <= 2 * elapsed + 2
    with read_scope(db_settings) as session:
        assert read_last_run(session).by in {f"w{i}@test:{i}" for i in range(3)}


def test_the_timer_survives_database_errors(
    db_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    running_timers: Callable[..., ReconcileTimer],
) -> None:
    # given: a reconcile whose first two runs find the database gone
    calls: list[int] = []

    def flaky_reconcile(settings: Settings) -> ReconcileReport:
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        return ReconcileReport()

    monkeypatch.setattr(reconcile_timer, "reconcile", flaky_reconcile)
    caplog.set_level(logging.WARNING, logger="inferq.worker.reconcile_timer")

    # when: the timer ticks
    timer = running_timers(db_settings, "w1@test:1")

    # then: each failure was logged, the third turn ran and was recorded, and the thread lives on
    with read_scope(db_settings) as session:
        wait_for(lambda: read_last_run(session).at, 15, "a recorded run after the failures")
    assert len(calls) >= 3 and timer.is_alive()
    assert sum("reconciler run failed" in r.getMessage() for r in caplog.records) == 2

    # and: stop() ends it
    timer.stop()
    assert not timer.is_alive()


def test_a_run_moments_after_another_is_skipped(db_settings: Settings) -> None:
    # given: a worker finished a run just now
    with session_scope(db_settings) as session:
        record_run(session, "w1@test:1")

    # when: another worker's turn comes
    skipped = run_if_due(db_settings, "w2@test:2")

    # then: it skipped; with no minimum gap it runs and is recorded
    assert skipped is None
    assert run_if_due(db_settings, "w2@test:2", min_gap=0) is not None
    with read_scope(db_settings) as session:
        assert read_last_run(session).by == "w2@test:2"
