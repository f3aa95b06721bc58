"""The deployment's reconciler lock (worker/reconcile_lock.py): of two contenders, in one process or two,
one takes it and the other skips; on Postgres (advisory lock) it goes with a killed holder's connection,
on SQLite (a row taken by compare-and-set) with its expiry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from inferq.shared.db import get_engine, session_scope
from inferq.shared.models import ReconcilerState, utcnow
from inferq.shared.reconciler_state import ROW_ID, ensure_row
from inferq.shared.settings import Settings
from inferq.worker.reconcile_lock import reconcile_lock
from tests.helpers.processes import ROOT
from tests.helpers.services import delete_all_rows

# Another process: tries the lock once, prints `taken` or `busy`, and holds a taken lock for argv[3] s.
CONTENDER = """
import sys, time
from inferq.shared.settings import Settings
from inferq.worker.reconcile_lock import reconcile_lock
settings = Settings.from_env({"INFERQ_DATABASE_URL": sys.argv[1], "INFERQ_DATA_DIR": sys.argv[2]})
with reconcile_lock(settings, "the other process") as taken:
    print("taken" if taken else "busy", flush=True)
    if taken:
        time.sleep(float(sys.argv[3]))
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def lock_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A migrated database: SQLite in tmp_path, or the session's Postgres (its rows deleted after)."""
    if request.param == "sqlite":
        settings: Settings = request.getfixturevalue("embedded_settings")
        yield settings
        return
    url = request.getfixturevalue("pg_url")
    settings = Settings.from_env({"INFERQ_DATABASE_URL": url, "INFERQ_DATA_DIR": str(tmp_path)})
    try:
        yield settings
    finally:
        delete_all_rows(settings)
        get_engine(settings).dispose()


def contender(settings: Settings, hold_seconds: float = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", CONTENDER, settings.database_url, str(settings.data_dir), str(hold_seconds)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


def other_process_tries(settings: Settings) -> str:
    proc = contender(settings)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return out.strip()


def test_of_two_contenders_in_one_process_one_takes_the_lock(lock_settings: Settings) -> None:
    # given: one contender holds the lock
    with reconcile_lock(lock_settings, "first") as first:
        # when: a second one tries while it is held
        with reconcile_lock(lock_settings, "second") as second:
            # then: the first has it, the second skips
            assert (first, second) == (True, False)

    # and: once released, the next contender takes it
    with reconcile_lock(lock_settings, "third") as third:
        assert third is True


def test_of_two_contenders_in_two_processes_one_takes_the_lock(lock_settings: Settings) -> None:
    # given: this process holds the lock
    with reconcile_lock(lock_settings, "this process") as held:
        assert held
        # when: another process tries
        # then: it finds the lock taken
        assert other_process_tries(lock_settings) == "busy"

    # and: after the release the other process takes it
    assert other_process_tries(lock_settings) == "taken"


@pytest.mark.integration
def test_a_postgres_lock_goes_with_its_holder_killed_by_sigkill(pg_url: str, tmp_path: Path) -> None:
    # given: another process holds the Postgres lock for a long while
    settings = Settings.from_env({"INFERQ_DATABASE_URL": pg_url, "INFERQ_DATA_DIR": str(tmp_path)})
    holder = contender(settings, hold_seconds=300)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "taken"
        with reconcile_lock(settings, "waiting") as taken:
            assert taken is False

        # when: the holder is killed with SIGKILL (its connection closes with it)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)

        # then: the lock is free at once
        with reconcile_lock(settings, "next") as taken:
            assert taken is True
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        get_engine(settings).dispose()


def test_a_sqlite_lock_of_a_holder_that_died_is_taken_once_it_expires(embedded_settings: Settings) -> None:
    # given: the lock row names a holder that died without releasing it, until a moment from now
    with session_scope(embedded_settings) as session:
        ensure_row(session)
        session.execute(
            update(ReconcilerState)
            .where(ReconcilerState.id == ROW_ID)
            .values(holder="dead 0", held_until=utcnow() + timedelta(seconds=60))
        )

    # when / then: before the expiry nobody takes it
    with reconcile_lock(embedded_settings, "early") as taken:
        assert taken is False

    # when: the expiry passes
    with session_scope(embedded_settings) as session:
        session.execute(update(ReconcilerState).values(held_until=utcnow() - timedelta(seconds=1)))

    # then: the next contender takes it, and releases it afterwards
    with reconcile_lock(embedded_settings, "late") as taken:
        assert taken is True
    with session_scope(embedded_settings) as session:
        row = session.get(ReconcilerState, ROW_ID)
        assert row is not None and row.holder is None and row.held_until is None
