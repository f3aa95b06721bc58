"""`inferq up` on the embedded default: SQLite, a storage folder, the filesystem broker; no servers."""

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


def test_inferq_up_runs_an_embedding_job_with_no_servers(processes: Processes, tmp_path: Path) -> None:
    # given: `inferq up` with only a data dir
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update({"INFERQ_DATA_DIR": str(tmp_path / "data"), "INFERQ_PART_RECORDS": "50"})
    processes.start("up", ["up", "--port", str(port), "--workers", "1"], env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, processes)
    key = processes.run(["keys", "create", "--tenant", "e2e-embedded"], env).strip()
    input_path, texts, bad_lines = write_mixed_input(tmp_path / "input.jsonl", records=120, broken_every=25)

    # when
    client = Client(url, key)
    job = client.submit_file(input_path, task="embedding", model="minilm-l6")
    final = client.wait(job.id, timeout=600)
    out = client.download(job.id, tmp_path / "out.jsonl")

    # then
    assert final.status == "succeeded", final
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [t[0] for t in texts]
    got = np.array([r["embedding"] for r in lines], dtype=np.float32)
    want = reference_embeddings([t[1] for t in texts])
    assert float((got * want).sum(axis=1).min()) >= 0.9999
    assert final.progress.failed == len(bad_lines)
    # and: the storage folder holds the objects under the tenant prefix only
    storage_root = tmp_path / "data" / "storage"
    assert all(p.relative_to(storage_root).parts[0] == "t" for p in storage_root.rglob("*") if p.is_file())
    # and: synchronous embeddings are served too, by the embedder `inferq up` started (not the API)
    sync = np.array(client.embed([t[1] for t in texts[:3]]), dtype=np.float32)
    assert float((sync * want[:3]).sum(axis=1).min()) >= 0.9999
