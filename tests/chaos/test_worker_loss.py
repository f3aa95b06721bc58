"""Workers that die: `kill -9` of a pool child, of a whole worker, and of every attempt at one part; and
of a whole worker in a deployment without beat, where the other worker's reconciler timer recovers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from inferq.shared.db import read_scope
from inferq.shared.models import utcnow
from inferq.shared.reconciler_state import read_last_run
from inferq.shared.states import TERMINAL
from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_faults import kill_mid_part
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import FAST_ENV, Stack, Submitted, owner_pid, parent_of
from tests.helpers.hostile_images import b64, png_claiming, solid_png, truncated_png
from tests.helpers.tenant_http import register_model
from tests.helpers.tiny_models import make_tiny_image_classifier

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

TERMINAL_NAMES = {s.value for s in TERMINAL}
# A dead worker's part runs again within its lease + one reconcile interval; this much more is allowed
# for the re-sent message to reach the free worker and for a slow, shared test machine.
RECOVERY_SLACK_SECONDS = 10


def test_kill_9_of_a_pool_child_and_of_a_whole_worker_loses_nothing(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: one worker (with the reconciler beat) running a job of 200 records in 10 parts
    stack.start_worker("w1")
    job = stack.submit(200)

    # when: its pool child is killed with SIGKILL in the middle of a part
    first = kill_mid_part(stack, job.job_id, "w1")
    # and: later the whole worker (main process, pool child, beat) is killed in the middle of a part
    second = kill_mid_part(stack, job.job_id, "w1", group=True)
    assert stack.procs.wait_exit("w1") == -signal.SIGKILL
    # and: a new worker starts
    stack.start_worker("w2")

    # then: the lapsed leases were taken again and the job finished with every record once
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=2)
    for lost in (first, second):
        part = stack.part(lost.id)
        assert part.status == "done" and part.lease_token > lost.lease_token
        assert part.attempts >= 2 and part.lease_owner != lost.lease_owner


def kill_every_attempt(stack: Stack, job: Submitted, part_id: str, worker: str, attempts: int) -> list[int]:
    """Kill the process holding the part during each of its counted attempts (as an out-of-memory
    kill would) until the job ends; the pids killed."""
    main = stack.main_pid(worker)
    kills: list[int] = []

    def kill_attempt_or_finished() -> bool:
        part = stack.part(part_id)
        if part.status == "running" and part.attempts <= attempts and part.lease_owner:
            pid = owner_pid(part)
            if pid not in kills and parent_of(pid) == main:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
        stack.procs.assert_alive()
        return stack.job(job.job_id).status in TERMINAL_NAMES

    wait_until(kill_attempt_or_finished, 180, "the job to end while its poison part keeps killing its worker")
    return kills


def test_a_part_that_kills_its_worker_every_time_fails_alone_as_worker_lost(
    make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: a worker that gives a part 2 attempts, and a job of 10 parts
    stack = make_stack(INFERQ_MAX_PART_ATTEMPTS="2")
    stack.start_worker("w1")
    job = stack.submit(200)
    poison = wait_until(lambda: stack.parts(job.job_id)[3:4], 60, "the plan")[0]

    # when: every attempt at part 3 kills the process running it (as an out-of-memory kill would)
    kills = kill_every_attempt(stack, job, poison.id, "w1", attempts=2)

    # then: after 2 lost attempts the third claim gives up on the part: its records are errors
    final = stack.part(poison.id)
    assert len(kills) == 2 and final.status == "failed" and final.attempts == 3
    failed = job.ids[final.first_record : final.first_record + final.records]
    check_job(stack, job, chaos_report, faults=len(kills), failed_ids=failed, error_code="worker_lost")


def submit_images(stack: Stack, records: int, hostile: dict[int, dict[str, str]]) -> Submitted:
    """An image-classification job on a tiny ViT: `records` 1200x1200 PNGs (ids r00000…), the record
    at each index of `hostile` replaced by those image fields."""
    model = register_model(
        stack.settings,
        "chaos",
        "tiny-vit",
        make_tiny_image_classifier(stack.tmp_path / "vit", ["h", "v"]),
        "image-classification",
    )
    image = b64(solid_png(1200, 1200))
    rows = [{"id": f"r{i:05d}", **hostile.get(i, {"image": image})} for i in range(records)]
    return stack.submit_rows(rows, task="image-classification", model=model)


def test_a_poison_part_of_images_fails_alone_and_bad_images_stay_per_record_errors(
    make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: a worker that gives a part 2 attempts, and an image job of 4 parts (20 records each) whose
    # part 1 holds a decompression bomb, a 7900x7900 PNG, keys no storage holds and a truncated PNG
    stack = make_stack(INFERQ_MAX_PART_ATTEMPTS="2")
    stack.start_worker("w1")
    hostile = {
        21: ({"image": b64(png_claiming(20000, 20000))}, "image_too_large"),
        22: ({"image": b64(png_claiming(7900, 7900))}, "image_too_large"),
        23: ({"image_key": "jobs"}, "image_not_found"),
        24: ({"image_key": "a\0b.png"}, "invalid_image_key"),
        25: ({"image_key": "k" * 5000}, "invalid_image_key"),
        26: ({"image": b64(truncated_png())}, "invalid_image"),
    }
    job = submit_images(stack, 80, {i: fields for i, (fields, _) in hostile.items()})
    poison = wait_until(lambda: stack.parts(job.job_id)[3:4], 60, "the plan")[0]

    # when: every attempt at part 3 kills the process running it
    kills = kill_every_attempt(stack, job, poison.id, "w1", attempts=2)

    # then: part 3 fails alone as worker_lost, one line per record; part 1 is done, its bad images errors
    final = stack.part(poison.id)
    assert len(kills) == 2 and final.status == "failed" and final.attempts == 3
    lost = job.ids[final.first_record : final.first_record + final.records]
    bad = [job.ids[i] for i in hostile]
    checked = check_job(
        stack, job, chaos_report, faults=len(kills), failed_ids=[*bad, *lost], embeddings=False
    )
    codes = {str(e["id"]): e["error"]["code"] for e in checked.errors}  # type: ignore[index]
    assert codes == {
        **{job.ids[i]: code for i, (_, code) in hostile.items()},
        **dict.fromkeys(lost, "worker_lost"),
    }
    assert stack.part(stack.parts(job.job_id)[1].id).status == "done"


def test_without_beat_a_killed_workers_part_runs_again_within_lease_and_one_reconcile_interval(
    make_stack: Callable[..., Stack], chaos_report: Callable[..., None]
) -> None:
    # given: two workers and no beat anywhere; the broker would hand back a dead worker's message only
    # after an hour (its visibility timeout); leases of 6 s, a reconciler turn every 2 s (FAST_ENV)
    stack = make_stack(INFERQ_VISIBILITY_TIMEOUT="3600")
    lease, interval = (
        int(FAST_ENV["INFERQ_LEASE_SECONDS"]),
        int(FAST_ENV["INFERQ_RECONCILE_INTERVAL_SECONDS"]),
    )
    budget = lease + interval + RECOVERY_SLACK_SECONDS
    # and: w2 has its model loaded (a one-part job), so that it is free when the lost part comes back
    stack.start_worker("w2", beat=False)
    warm_up = stack.submit(20)
    stack.wait_job(warm_up.job_id)
    stack.start_worker("w1", beat=False)
    job = stack.submit(120)  # 6 parts, one message each: nothing but a re-send can run a lost part

    # when: w1 (main process and pool child) is killed with SIGKILL in the middle of a part
    lost = kill_mid_part(stack, job.job_id, "w1", group=True)
    killed, killed_at = time.monotonic(), utcnow()
    assert stack.procs.wait_exit("w1") == -signal.SIGKILL

    # then: w2's reconciler re-sent the part, and w2 runs it again within lease + one interval + slack
    try:
        again = wait_until(
            lambda: (p := stack.part(lost.id)).lease_token > lost.lease_token and p,
            budget,
            f"part {lost.index} to be claimed again",
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\n{stack.describe(job.job_id)}") from e
    recovered = time.monotonic() - killed
    assert again.lease_owner != lost.lease_owner
    assert again.sent_at is not None and again.sent_at > killed_at
    resent = (again.sent_at - killed_at).total_seconds()
    print(f"\nlost part re-sent {resent:.1f} s and claimed again {recovered:.1f} s after the kill")
    # and: the job finished with every record once
    stack.wait_job(job.job_id, timeout=budget)
    check_job(stack, job, chaos_report, faults=1)
    # and: the reconciler runs on record since the kill are w2's (w1 is dead, and there is no beat)
    with read_scope(stack.settings) as session:
        last = read_last_run(session)
    assert last.by is not None and last.by.startswith("w2@chaos") and last.at is not None
    assert last.at > killed_at
