"""Redis restarted without persistence: every message is gone, the rows are not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def _queued_messages(url: str, queue: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.llen(queue))


def test_redis_restarted_with_parts_queued_and_again_mid_job_loses_nothing(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: a job planned by a control-only worker: 10 run_part messages wait in Redis, no one runs them
    stack.start_worker("planner", queues="control", beat=False)
    job = stack.submit(200)
    wait_until(lambda: _queued_messages(stack.redis.url, "inference") >= 10, 60, "the part messages")
    stack.procs.signal_main("planner", 15)
    assert stack.procs.wait_exit("planner") == 0
    assert {p.status for p in stack.parts(job.job_id)} == {"queued"}

    # when: Redis restarts without persistence: the messages are gone
    stack.redis.restart()
    assert _queued_messages(stack.redis.url, "inference") == 0
    # and: a worker starts (its start-up reconcile and the beat re-send what the rows say is owed)
    stack.start_worker("w1")
    # and: Redis is killed and restarted again while the worker is in the middle of the job
    stack.wait_running_part(job.job_id)
    stack.redis.restart(hard=True)

    # then: the worker reconnects, the reconciler re-sends, and every record is there once
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=2)
    assert "reconciler re-sent" in stack.procs.logs("w1")
