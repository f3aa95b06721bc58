"""The whole service as separate processes: `inferq serve`, `inferq serve-embeddings` and two
`inferq worker` on Postgres, Redis, S3."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from inferq.client import Client
from tests.e2e.inputs import reference_embeddings, write_mixed_input
from tests.helpers.ports import free_port
from tests.helpers.processes import Processes, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_embedding_job_through_serve_and_two_workers(
    pg_url: str, redis_url: str, s3_endpoint: str, s3_bucket: str, processes: Processes, tmp_path: Path
) -> None:
    # given: the API and two workers as real processes on Postgres + Redis + a moto S3 server
    port = free_port()
    env = {
        **os.environ,
        "INFERQ_DATABASE_URL": pg_url,
        "INFERQ_BROKER_URL": redis_url,
        "INFERQ_STORAGE_URL": f"s3://{s3_bucket}/e2e",
        "INFERQ_S3_ENDPOINT_URL": s3_endpoint,
        "INFERQ_DATA_DIR": str(tmp_path / "data"),
        "INFERQ_PART_RECORDS": "40",
        "INFERQ_TORCH_THREADS": "1",
    }
    key = processes.run(["keys", "create", "--tenant", "e2e-distributed"], env).strip()
    env["INFERQ_EMBEDDINGS_URL"] = f"http://127.0.0.1:{free_port()}"
    processes.start("serve", ["serve", "--port", str(port)], env)
    processes.start("embedder", ["serve-embeddings"], env)
    for i in range(2):
        processes.start(f"worker{i}", ["worker", "--gpus", "none", "--name", f"w{i}@e2e"], env)
    for i in range(2):
        processes.wait_for_log(f"worker{i}", "ready.")
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, processes)
    input_path, texts, bad_lines = write_mixed_input(tmp_path / "input.jsonl", records=200, broken_every=20)

    # when: a user uploads, submits, waits and downloads over HTTP
    client = Client(url, key)
    job = client.submit_file(input_path, task="embedding", model="minilm-l6")
    final = client.wait(job.id, timeout=600)
    out = client.download(job.id, tmp_path / "out.jsonl")
    errs = client.download(job.id, tmp_path / "errors.jsonl", errors=True)

    # then: every good record once, in input order, matching the model run directly
    assert final.status == "succeeded", final
    assert final.progress.completed == len(texts)
    assert final.progress.failed == len(bad_lines)
    assert final.progress.total == len(texts) + len(bad_lines)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [t[0] for t in texts]
    got = np.array([r["embedding"] for r in lines], dtype=np.float32)
    want = reference_embeddings([t[1] for t in texts])
    cosines = (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cosines.min() >= 0.9999
    errors = [json.loads(line) for line in errs.read_text().splitlines()]
    assert sorted(e["line"] for e in errors) == bad_lines
    # and: the events name the workers that ran the parts
    started = [e for e in client.events(job.id) if e["kind"] == "part_started"]
    assert len(started) >= final.progress.total // 40
    assert all(e["data"].get("worker") for e in started)
    # and: synchronous embeddings come from the embedder process, with the job's vectors
    processes.wait_for_log("embedder", "inferq embedder on")
    sync = np.array(client.embed([t[1] for t in texts[:3]]), dtype=np.float32)
    assert float((sync * want[:3]).sum(axis=1).min()) >= 0.9999
