"""A training worker killed mid-run: another worker resumes the job from its last checkpoint."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from inferq.client import Client
from tests.helpers.labelled_data import sentiment_rows, write_jsonl
from tests.helpers.ports import free_port
from tests.helpers.processes import Processes, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EPOCHS = 8


def test_a_killed_training_worker_is_resumed_from_the_last_checkpoint(
    pg_url: str, redis_url: str, s3_endpoint: str, s3_bucket: str, processes: Processes, tmp_path: Path
) -> None:
    # given: the API and one training worker as real processes, with short leases
    port = free_port()
    env = {
        **os.environ,
        "INFERQ_DATABASE_URL": pg_url,
        "INFERQ_BROKER_URL": redis_url,
        "INFERQ_STORAGE_URL": f"s3://{s3_bucket}/e2e",
        "INFERQ_S3_ENDPOINT_URL": s3_endpoint,
        "INFERQ_DATA_DIR": str(tmp_path / "data"),
        "INFERQ_TORCH_THREADS": "1",
        "INFERQ_LEASE_SECONDS": "5",
        "INFERQ_HEARTBEAT_SECONDS": "1",
        "INFERQ_RECONCILE_INTERVAL": "2",
    }
    key = processes.run(["keys", "create", "--tenant", "e2e-train"], env).strip()
    processes.start("serve", ["serve", "--port", str(port)], env)
    first = processes.start("worker0", ["worker", "--gpus", "none", "--name", "w0@e2e"], env)
    processes.wait_for_log("worker0", "ready.")
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, processes)
    client = Client(url, key)
    training = client.upload(write_jsonl(tmp_path / "train.jsonl", sentiment_rows(3000)), purpose="training")
    job = client.create_job(
        {
            "type": "train",
            "task": "text-classification",
            "base_model": None,
            "training_file": training.id,
            "model_name": "resumed",
            "hyperparameters": {"epochs": EPOCHS, "max_length": 32, "seed": 1},
        }
    )

    # when: the worker is killed (-9) right after its first checkpoint, and another worker starts
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "epoch" for e in client.events(job.id)):
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_after = max(e["data"]["epoch"] for e in client.events(job.id) if e["kind"] == "epoch")
    assert killed_after < EPOCHS, "the job finished before the worker could be killed"
    processes.start("worker1", ["worker", "--gpus", "none", "--name", "w1@e2e", "--beat"], env)
    final = client.wait(job.id, timeout=300)

    # then: it succeeded, resuming after the last checkpoint instead of starting over
    assert final.status == "succeeded", final
    events = client.events(job.id)
    resumed = [e for e in events if e["kind"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["data"]["epoch"] >= killed_after
    epochs = [e["data"]["epoch"] for e in events if e["kind"] == "epoch"]
    start = resumed[0]["data"]["epoch"]
    assert epochs[-(EPOCHS - start) :] == list(range(start + 1, EPOCHS + 1))
    assert epochs.count(1) == 1, "epoch 1 ran again: the job started over"
    assert final.to_dict()["result_model"] == "resumed:1"
