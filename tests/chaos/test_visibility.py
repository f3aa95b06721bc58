"""A message redelivered by the broker (visibility timeout) while the first worker still holds the lease."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from inferq.shared.queue import celery_config
from inferq.shared.settings import Settings, SettingsError
from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_faults import freeze_mid_part
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import Stack

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize(("time_limit", "visibility"), [("60", "60"), ("120", "60")])
def test_a_time_limit_not_below_the_visibility_timeout_is_refused(time_limit: str, visibility: str) -> None:
    # given: a configuration where the broker would hand a still-running task to a second worker
    env = {"INFERQ_TASK_TIME_LIMIT": time_limit, "INFERQ_VISIBILITY_TIMEOUT": visibility}

    # when / then: the settings refuse to load, naming both variables
    with pytest.raises(SettingsError, match=r"INFERQ_TASK_TIME_LIMIT.*INFERQ_VISIBILITY_TIMEOUT"):
        Settings.from_env(env)


@pytest.mark.parametrize("time_limit", [10, 45, 3000])
def test_the_celery_limits_sit_below_the_visibility_timeout(time_limit: int) -> None:
    # given: the smallest allowed visibility timeout above the time limit
    settings = Settings.from_env(
        {
            "INFERQ_BROKER_URL": "redis://127.0.0.1:1/0",
            "INFERQ_TASK_TIME_LIMIT": str(time_limit),
            "INFERQ_VISIBILITY_TIMEOUT": str(time_limit + 1),
        }
    )

    # when
    config = celery_config(settings)

    # then: soft limit < hard limit < visibility timeout, and the soft limit leaves a task most of its time
    soft, hard = config["task_soft_time_limit"], config["task_time_limit"]
    assert 0 < soft < hard < config["broker_transport_options"]["visibility_timeout"]
    assert soft >= hard * 0.9


def _unacked_run_part(client: redis.Redis, part_id: str) -> tuple[str, float] | None:
    """The task id and delivery time of the unacknowledged run_part message for `part_id`, if any."""
    for tag, raw in client.hgetall("unacked").items():
        message: dict[str, Any] = json.loads(raw)[0]
        headers = message.get("headers", {})
        if headers.get("task") == "inferq.run_part" and part_id in headers.get("argsrepr", ""):
            score = client.zscore("unacked_index", tag)
            return str(headers["id"]), float(score or 0)
    return None


@pytest.mark.slow
def test_a_redelivered_copy_cannot_commit_while_the_first_worker_holds_the_lease(
    make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: w1 (a 60 s lease) runs a part; then its whole process group is frozen with SIGSTOP for
    # longer than the broker's visibility timeout (it stands for a part that runs longer than that)
    stack = make_stack(INFERQ_LEASE_SECONDS="60")
    stack.start_worker("w1")
    job = stack.submit(200)
    part, _ = freeze_mid_part(stack, job.job_id, "w1", group=True)
    client = redis.Redis.from_url(stack.redis.url)
    try:
        task_id, delivered = wait_until(lambda: _unacked_run_part(client, part.id), 10, "the unacked message")
        visibility = 11
        wait_until(lambda: time.time() > delivered + visibility + 1, visibility + 5, "the visibility timeout")

        # when: w2, whose broker visibility timeout is 11 s, starts: it hands itself w1's message
        stack.start_worker("w2", INFERQ_VISIBILITY_TIMEOUT=str(visibility), INFERQ_TASK_TIME_LIMIT="10")
        stack.procs.wait_for_log("w2", f"inferq.run_part[{task_id}] succeeded", timeout=60)

        # then: the copy found the lease held and did nothing
        assert f"inferq.run_part[{task_id}] succeeded in" in stack.procs.logs("w2")
        line = next(x for x in stack.procs.logs("w2").splitlines() if f"run_part[{task_id}] succeeded" in x)
        assert line.endswith("'skipped'"), line
        held = stack.part(part.id)
        assert (held.status, held.lease_token, held.attempts) == ("running", 1, 1)
    finally:
        os.killpg(stack.main_pid("w1"), signal.SIGCONT)
        client.close()
    # and: w1 wakes up, still holds its lease, and commits the part itself
    done = stack.wait_part(part.id, {"done"}, timeout=60)
    assert (done.lease_token, done.attempts, done.lease_owner) == (1, 1, part.lease_owner)
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=1)
