"""The S3 endpoint goes away mid-job and comes back: parts retry, nothing is lost.

moto keeps every bucket and object in memory, so killing and restarting moto_server would also delete
the input file and the finished parts: no storage service loses its data on a restart, so that would
test moto, not inferq. Instead the workers reach moto through a TCP relay (`TcpProxy`): cutting it
resets every open connection and refuses new ones, which is exactly what a client sees when an S3
endpoint dies, and restoring it brings the endpoint back with its data, as a real restart would.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_servers import Servers, wait_until
from tests.helpers.chaos_stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

OUTAGE_LOG_SIGN = "S3 unreachable"


def test_s3_endpoint_down_mid_job_parts_retry_and_nothing_is_lost(
    make_stack: Callable[..., Stack], servers: Servers, chaos_report: Callable[..., None]
) -> None:
    # given: two workers that reach S3 through a relay and give a part one attempt only (an outage must
    # not count as a failed attempt), and a job under way
    stack = make_stack(INFERQ_MAX_PART_ATTEMPTS="1")
    relay = servers.proxy(stack.moto.port)
    stack.start_worker("w1", INFERQ_S3_ENDPOINT_URL=relay.url)
    stack.start_worker("w2", beat=False, INFERQ_S3_ENDPOINT_URL=relay.url)
    job = stack.submit(200)
    wait_until(lambda: stack.job(job.job_id).parts_done >= 1, 120, "a first part to finish")

    # when: the endpoint dies (connections reset, new ones refused) until the workers have noticed
    relay.cut()
    try:
        wait_until(
            lambda: any(OUTAGE_LOG_SIGN in stack.procs.logs(w) for w in ("w1", "w2")),
            120,
            "a worker to fail to reach S3",
            interval=0.2,
        )
    finally:
        # and: it comes back
        relay.restore()

    # then: the parts that failed were retried and every record is in the output once
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=1)
    # and: at least one part met the outage mid-attempt and was handed back without counting it
    released = [e.message or "" for e in stack.events(job.job_id, "part_released")]
    assert any("StorageUnavailable" in m for m in released), released
