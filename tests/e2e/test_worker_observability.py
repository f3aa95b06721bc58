"""A real `inferq worker` (prefork pool of two children) serves the metrics of its children on its own
port, announces itself for the API's worker count, and writes JSON log lines with job and part ids."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from inferq.api.app import create_app
from inferq.shared.settings import Settings
from tests.helpers.ports import free_port
from tests.helpers.processes import Processes
from tests.helpers.prometheus_text import metric

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORDS = 40


def test_a_prefork_worker_exports_its_childrens_metrics_and_json_logs(
    pg_url: str, redis_url: str, s3_endpoint: str, s3_bucket: str, processes: Processes, tmp_path: Path
) -> None:
    # given: a worker process with two pool children, its metrics port and JSON logs
    port = free_port()
    env = {
        **os.environ,
        "INFERQ_DATABASE_URL": pg_url,
        "INFERQ_BROKER_URL": redis_url,
        "INFERQ_STORAGE_URL": f"s3://{s3_bucket}/obs",
        "INFERQ_S3_ENDPOINT_URL": s3_endpoint,
        "INFERQ_DATA_DIR": str(tmp_path / "data"),
        "INFERQ_PART_RECORDS": "10",
        "INFERQ_TORCH_THREADS": "1",
        "INFERQ_WORKER_METRICS_PORT": str(port),
        "INFERQ_LOG_JSON": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    key = processes.run(["keys", "create", "--tenant", "e2e-observed"], env).strip()
    processes.start("worker", ["worker", "--gpus", "none", "--name", "obs@e2e", "--concurrency", "2"], env)
    processes.wait_for_log("worker", "ready.")
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("INFERQ_")})
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {key}"}

    # when: a job of 4 parts runs on it
    data = "".join(json.dumps({"id": f"r{i}", "text": f"sentence {i}"}) + "\n" for i in range(RECORDS))
    r = client.post(
        "/v1/files",
        headers=headers,
        data={"purpose": "input", "file": (io.BytesIO(data.encode()), "in.jsonl")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    body = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": r.get_json()["id"]}
    job_id = client.post("/v1/jobs", headers=headers, json=body).get_json()["id"]
    deadline = time.monotonic() + 300
    while (job := client.get(f"/v1/jobs/{job_id}", headers=headers).get_json())["status"] != "succeeded":
        assert job["status"] not in ("failed", "cancelled", "expired") and time.monotonic() < deadline, job
        processes.assert_alive()
        time.sleep(0.5)

    # then: the worker's endpoint adds up what its children did
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert metric(text, "inferq_worker_up", worker="obs@e2e", gpu="none") == 1
    assert metric(text, "inferq_worker_records_total", task="embedding", outcome="ok") == RECORDS
    assert metric(text, "inferq_worker_parts_total", task="embedding", outcome="done") == 4
    assert metric(text, "inferq_worker_part_seconds_count", task="embedding") == 4
    assert (metric(text, "inferq_worker_batch_size_count", task="embedding") or 0) >= 4
    # and: the API counts it among the workers
    api_text = client.get("/metrics").get_data(as_text=True)
    assert metric(api_text, "inferq_workers", gpu="none") == 1
    # and: its log lines are JSON, and those about the job carry its id and its parts' ids
    lines = []
    for raw in processes.logs("worker").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    about_job = [line for line in lines if line.get("job_id") == job_id]
    assert len({line["part_id"] for line in about_job if "part_id" in line}) == 4
    assert {"inferq.worker.planner", "inferq.worker.runner", "inferq.worker.finalizer"} <= {
        line["logger"] for line in about_job
    }
