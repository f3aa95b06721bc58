"""When the reconciler last ran, as operators see it: `/metrics` (`inferq_reconciler_*`), `/readyz`'s
`reconciler`, and `inferq status` without a job, each with a warning once no process has run it for
3 intervals. The app runs in the embedded mode (SQLite); `inferq status` asks it over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from inferq.api.app import create_app
from inferq.cli import main as cli
from inferq.shared.db import session_scope
from inferq.shared.models import utcnow
from inferq.shared.reconciler_state import record_run
from inferq.shared.settings import Settings
from tests.helpers.api_client import ApiClient
from tests.helpers.prometheus_text import metric

INTERVAL = 30


@pytest.fixture
def settings(embedded_settings: Settings) -> Settings:
    return embedded_settings.with_overrides(reconcile_interval_seconds=INTERVAL)


def ran(settings: Settings, seconds_ago: float, by: str = "w1@host:7") -> None:
    with session_scope(settings) as session:
        record_run(session, by, utcnow() - timedelta(seconds=seconds_ago))


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    """The app served over HTTP in a thread, for the CLI."""
    http = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(timeout=5)


def test_metrics_show_the_last_run_and_say_overdue_after_three_intervals(
    make_client: Callable[[Settings], ApiClient], settings: Settings
) -> None:
    client = make_client(settings).client

    # given no run yet / when scraped / then overdue, and no last-run time
    before = client.get("/metrics").get_data(as_text=True)
    assert metric(before, "inferq_reconciler_overdue") == 1
    assert metric(before, "inferq_reconciler_last_run_timestamp_seconds") is None

    # given a run 10 s ago / then its time and age, not overdue
    ran(settings, 10)
    fresh = client.get("/metrics").get_data(as_text=True)
    assert metric(fresh, "inferq_reconciler_overdue") == 0
    assert 9 <= (metric(fresh, "inferq_reconciler_last_run_age_seconds") or 0) < 60
    stamp = metric(fresh, "inferq_reconciler_last_run_timestamp_seconds") or 0
    assert abs(stamp - (utcnow().timestamp() - 10)) < 60

    # given the last run more than 3 intervals ago / then overdue
    ran(settings, 3 * INTERVAL + 5)
    stale = client.get("/metrics").get_data(as_text=True)
    assert metric(stale, "inferq_reconciler_overdue") == 1


def test_readyz_says_when_and_by_whom_the_reconciler_last_ran(
    make_client: Callable[[Settings], ApiClient], settings: Settings
) -> None:
    # given a run 5 s ago
    ran(settings, 5)

    # when
    body = make_client(settings).client.get("/readyz").get_json()

    # then: ready, and the reconciler's state beside the checks, without a warning
    assert body["status"] == "ready"
    reconciler = body["reconciler"]
    assert reconciler["last_run_by"] == "w1@host:7" and reconciler["interval_seconds"] == INTERVAL
    assert 4 <= reconciler["age_seconds"] < 60
    assert reconciler["overdue"] is False and reconciler["warning"] is None


def test_inferq_status_without_a_job_shows_the_last_run(server_url: str, settings: Settings) -> None:
    # given a run 5 s ago
    ran(settings, 5)

    # when
    result = CliRunner().invoke(cli, ["status", "--url", server_url])

    # then: exit 0, the checks and the last run, no warning
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ready: database ok")
    assert "reconciler: last ran" in result.output and "by w1@host:7 (every 30 s)" in result.output
    assert "warning" not in result.output


def test_inferq_status_warns_when_no_process_ran_the_reconciler_for_three_intervals(
    server_url: str, settings: Settings
) -> None:
    # given the last run 4 intervals ago
    ran(settings, 4 * INTERVAL)

    # when
    result = CliRunner().invoke(cli, ["status", "--url", server_url])

    # then: exit 1 with the warning
    assert result.exit_code == 1
    assert "warning: no process has run the reconciler for 120 s" in result.output
    assert "inferq worker" in result.output
