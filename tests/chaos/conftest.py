"""Chaos fixtures: each test gets its own Redis, Postgres and S3 (moto) servers, to kill and restart, and
a deployment on them. The harness itself is in ``tests/helpers/``: `chaos_servers` (the servers and the
TCP relay), `chaos_stack` (`Stack`, `ChaosProcesses`, `build_stack`), `chaos_faults`, `chaos_checks`
(`check_job`, the one assertion every test makes) and `chaos_report`.

Fixtures: ``pg_template`` (session: one ``initdb``, copied by every Postgres server), ``servers`` (the
test's `Servers`, all stopped after it and the Postgres folder removed), ``chaos_processes``,
``make_stack`` (``make_stack(**env) -> Stack``; processes stopped after the test, before the servers),
``stack`` (``make_stack()``) and ``chaos_report``.

The ``chaos_report`` collector adds up what the tests did and prints it at the end of the session; with
``INFERQ_CHAOS_README=1`` it also rewrites the numbers in README.md's "Reliability" section after a run
where every chaos test passed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferq.shared.db import dispose_engines
from tests.helpers.chaos_report import REPORT, render_summary, write_readme
from tests.helpers.chaos_servers import Servers, init_pg_template
from tests.helpers.chaos_stack import ChaosProcesses, Stack, build_stack
from tests.helpers.processes import ROOT


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Path]:
    """One `initdb` per session; each test copies the folder (much faster than initdb each time)."""
    try:
        data = init_pg_template()
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield data
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def servers(tmp_path: Path, pg_template: Path) -> Iterator[Servers]:
    group = Servers(log_dir=tmp_path, pg_template=pg_template)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def chaos_processes(tmp_path: Path) -> Iterator[ChaosProcesses]:
    group = ChaosProcesses(log_dir=tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def make_stack(
    servers: Servers, chaos_processes: ChaosProcesses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Stack]]:
    """``make_stack(**env)``: own Redis, Postgres and moto servers, migrated, with a bucket and a key."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def make(**env_overrides: str) -> Stack:
        return build_stack(servers, chaos_processes, tmp_path, **env_overrides)

    try:
        yield make
    finally:
        chaos_processes.stop_all()  # before the servers go: workers flush and ack cleanly
        dispose_engines()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


# ---- the session report --------------------------------------------------------------------------


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """``chaos_report(faults=1, jobs=1, records=200, lost=0, duplicated=0)`` for the current test."""
    started = time.monotonic()
    name = request.node.name

    def add(**counts: int) -> None:
        REPORT.add(name, **counts)

    yield add
    REPORT.rows.setdefault(name, {})["seconds"] = round(time.monotonic() - started, 1)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    if not REPORT.rows:
        return
    terminalreporter.write_sep("-", "chaos summary")
    summary = render_summary(REPORT)
    terminalreporter.write_line(summary)
    if os.environ.get("INFERQ_CHAOS_README") != "1" or exitstatus != 0:
        return
    if write_readme(ROOT / "README.md", summary):
        terminalreporter.write_line("README.md updated with these numbers")
