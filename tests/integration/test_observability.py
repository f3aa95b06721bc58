"""Observability: the API's /metrics (jobs, records, queue depth per queue, workers by GPU), a worker's
own metrics endpoint after a job ran, and JSON log lines that carry job and part ids."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from inferq.shared import queue, worker_presence
from inferq.shared.logs import JsonFormatter
from inferq.shared.settings import Settings
from inferq.worker import metrics_server
from tests.helpers.api_client import ApiClient
from tests.helpers.ports import free_port
from tests.helpers.prometheus_text import metric
from tests.helpers.tenant_http import tenant_http
from tests.helpers.worker_env import in_process_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    return make_worker_settings(INFERQ_PART_RECORDS="4", INFERQ_WORKER_METRICS_PORT=str(free_port()))


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes with the JSON formatter of INFERQ_LOG_JSON, from INFO up."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def wait_terminal(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = dict(client.get(f"/v1/jobs/{job_id}", headers=headers).get_json())
        if job["status"] in ("succeeded", "failed", "cancelled", "expired"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def test_after_a_job_runs_the_metrics_have_its_series_and_the_json_logs_its_ids(
    worker_settings: Settings, json_log: io.StringIO
) -> None:
    # given: an in-process worker with its metrics endpoint, and the API
    endpoint = metrics_server.start(worker_settings, "w-test", "none")
    assert endpoint is not None
    client, headers = tenant_http(worker_settings, "observed")
    data = "".join(json.dumps({"id": f"r{i}", "text": f"record {i} " * (i + 1)}) + "\n" for i in range(10))
    r = client.post(
        "/v1/files",
        headers=headers,
        data={"purpose": "input", "file": (io.BytesIO(data.encode() + b"{broken\n"), "in.jsonl")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    try:
        with in_process_worker(worker_settings, loglevel="INFO"):
            # when: an embedding job runs (3 parts of 4 records, one bad record)
            r = client.post(
                "/v1/jobs",
                headers=headers,
                json={
                    "type": "predict",
                    "task": "embedding",
                    "model": "minilm-l6",
                    "input_file": r.get_json()["id"],
                },
            )
            job = wait_terminal(client, headers, r.get_json()["id"])
        worker_text = httpx.get(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=10).text
    finally:
        endpoint.close()
    api_text = client.get("/metrics").get_data(as_text=True)

    # then: the worker's endpoint has records, parts and their latency, batches, padding and forward time
    assert job["status"] == "succeeded", job
    assert metric(worker_text, "inferq_worker_up", worker="w-test", gpu="none") == 1
    assert (metric(worker_text, "inferq_worker_records_total", task="embedding", outcome="ok") or 0) >= 10
    assert (metric(worker_text, "inferq_worker_records_total", task="embedding", outcome="error") or 0) >= 1
    assert (metric(worker_text, "inferq_worker_parts_total", task="embedding", outcome="done") or 0) >= 3
    assert (metric(worker_text, "inferq_worker_part_seconds_count", task="embedding") or 0) >= 3
    assert (metric(worker_text, "inferq_worker_batch_size_count", task="embedding") or 0) >= 3
    assert metric(worker_text, "inferq_worker_batch_size_bucket", task="embedding", le="+Inf") is not None
    assert metric(worker_text, "inferq_worker_padding_ratio_bucket", task="embedding", le="1.0") is not None
    assert (metric(worker_text, "inferq_worker_forward_seconds_sum", task="embedding", device="cpu") or 0) > 0
    # and: the API's /metrics has jobs by state, records, queue depth per queue and the broker
    assert metric(api_text, "inferq_jobs", status="succeeded") == 1
    assert metric(api_text, "inferq_records_processed_total", outcome="ok") == 10
    assert metric(api_text, "inferq_records_processed_total", outcome="error") == 1
    assert metric(api_text, "inferq_broker_up") == 1
    for name in queue.ALL_QUEUES:
        assert metric(api_text, "inferq_queue_depth", queue=name) == 0
    # and: the JSON log lines parse, and the worker's carry the job and part ids
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    about_job = [line for line in lines if line.get("job_id") == job["id"]]
    assert any(line["logger"] == "inferq.worker.planner" for line in about_job)
    assert any(line["logger"] == "inferq.worker.finalizer" for line in about_job)
    parts = [line for line in about_job if line["logger"] == "inferq.worker.runner"]
    assert len({line["part_id"] for line in parts}) == 3
    assert all(line["part_id"].startswith("part_") for line in parts)


def test_queue_depth_and_workers_by_gpu_on_redis(api: ApiClient) -> None:
    # given: three messages waiting on the control queue (no worker), one on inference
    for _ in range(3):
        queue.send(queue.TASK_RECONCILE, [], settings=api.settings)
    queue.send(queue.TASK_RUN_PART, ["part_x"], priority=5, settings=api.settings)
    # and: three workers announced, two of them on GPUs
    for name, gpu in (("w0@h", "0"), ("w1@h", "1"), ("cpu@h", "none")):
        worker_presence.announce(api.settings, worker_presence.Presence(name, gpu, "h", 1, "inference"))

    # when
    text = api.client.get("/metrics").get_data(as_text=True)

    # then
    assert metric(text, "inferq_queue_depth", queue="control") == 3
    assert metric(text, "inferq_queue_depth", queue="inference") == 1
    assert metric(text, "inferq_queue_depth", queue="training") == 0
    assert metric(text, "inferq_workers", gpu="0") == 1
    assert metric(text, "inferq_workers", gpu="1") == 1
    assert metric(text, "inferq_workers", gpu="none") == 1

    # when: a worker stops, it is no longer counted
    worker_presence.withdraw(api.settings, "w1@h")
    assert metric(api.client.get("/metrics").get_data(as_text=True), "inferq_workers", gpu="1") is None


def test_queue_depth_and_workers_on_the_embedded_broker(
    embedded_settings: Settings, make_client: Callable[[Settings], ApiClient]
) -> None:
    # given: the filesystem broker with two control messages, a live worker and one long gone
    api = make_client(embedded_settings)
    queue.send(queue.TASK_RECONCILE, [], settings=embedded_settings)
    queue.send(queue.TASK_RECONCILE, [], settings=embedded_settings)
    worker_presence.announce(embedded_settings, worker_presence.Presence("live@h", "0", "h", 1, "inference"))
    worker_presence.announce(embedded_settings, worker_presence.Presence("gone@h", "0", "h", 2, "inference"))
    gone = next(Path(embedded_settings.broker_dir, "workers").glob("gone*"))
    old = time.time() - worker_presence.TTL_SECONDS - 5
    os.utime(gone, (old, old))

    # when
    text = api.client.get("/metrics").get_data(as_text=True)

    # then: the message files are counted, and only the fresh worker record
    assert metric(text, "inferq_queue_depth", queue="control") == 2
    assert metric(text, "inferq_queue_depth", queue="inference") == 0
    assert metric(text, "inferq_workers", gpu="0") == 1
