"""The OpenAI-compatible surface, driven by the official `openai` SDK against the real API (waitress on a
free port) on Postgres, Redis and moto S3, with a real Celery worker in-process for the batch runs."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from waitress import wasyncore
from waitress.server import create_server

from inferq.api.app import create_app
from inferq.shared.settings import Settings
from inferq.worker.finalizer import finalize_job
from tests.e2e.inputs import real_sentences, reference_embeddings
from tests.helpers.ports import free_port
from tests.helpers.tenant_http import new_tenant_key

pytestmark = pytest.mark.integration

BATCH_TERMINAL = {"completed", "failed", "cancelled", "expired"}


# `worker_settings` (parts of 30 records) and `celery_worker` are the shared ones of tests/conftest.py.


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The API on `settings` served by waitress in a thread: its base URL."""
    port = free_port()
    srv = create_server(create_app(settings), host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=srv.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.task_dispatcher.shutdown()
        wasyncore.close_all(srv._map)  # type: ignore[union-attr]  # the loop ends once its map is empty
        thread.join(timeout=10)


@pytest.fixture
def server(worker_settings: Settings) -> Iterator[str]:
    """The API served by waitress in a thread: its base URL."""
    with serving(worker_settings) as url:
        yield url


@pytest.fixture
def embeddings_server(embedder_settings: Settings) -> Iterator[str]:
    """`server` forwarding POST /v1/embeddings to a real embedder process."""
    with serving(embedder_settings) as url:
        yield url


def sdk(server: str, settings: Settings, tenant: str) -> openai.OpenAI:
    key = new_tenant_key(settings, tenant)
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=60)


def request_line(
    custom_id: str, body: dict[str, Any], url: str = "/v1/embeddings", method: str = "POST"
) -> str:
    return json.dumps({"custom_id": custom_id, "method": method, "url": url, "body": body})


def write_batch(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def cosines(got: list[list[float]], want: np.ndarray) -> np.ndarray:
    g = np.asarray(got, dtype=np.float32)
    return np.sum(g * want, axis=1) / np.linalg.norm(g, axis=1) / np.linalg.norm(want, axis=1)


def wait_batch(client: openai.OpenAI, batch_id: str, timeout: float = 150) -> Any:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        assert batch.request_counts is not None
        assert batch.request_counts.completed >= seen, "progress went backwards"
        seen = batch.request_counts.completed
        if batch.status in BATCH_TERMINAL:
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} not finished in {timeout}s")


def test_a_batch_runs_as_a_job_for_the_openai_sdk(
    server: str, worker_settings: Settings, celery_worker: Any, tmp_path: Path
) -> None:
    client = sdk(server, worker_settings, "acme")
    # given: a batch file of 40 requests (one with 3 inputs, one asking base64) and 6 lines that fail
    texts = real_sentences(42)
    good = [request_line(f"req-{i}", {"model": "minilm-l6", "input": texts[i]}) for i in range(38)]
    good.insert(5, request_line("req-multi", {"model": "minilm-l6", "input": texts[38:41]}))
    good.insert(
        20, request_line("req-b64", {"model": "minilm-l6", "input": texts[41], "encoding_format": "base64"})
    )
    bad = {
        "not json": '{"custom_id": "broken", "method": ',
        "wrong url": request_line(
            "req-url", {"model": "minilm-l6", "input": "x"}, url="/v1/chat/completions"
        ),
        "no input": request_line("req-noinput", {"model": "minilm-l6"}),
        "unknown model": request_line("req-nomodel", {"model": "no-such-model", "input": "x"}),
        "wrong method": request_line("req-get", {"model": "minilm-l6", "input": "x"}, method="GET"),
        "no custom_id": json.dumps({"method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}),
    }
    lines = good[:10] + list(bad.values())[:3] + good[10:30] + list(bad.values())[3:] + good[30:]
    path = write_batch(tmp_path / "batch.jsonl", lines)
    with path.open("rb") as fh:
        uploaded = client.files.create(file=fh, purpose="batch")
    assert uploaded.id.startswith("file_") and uploaded.purpose == "batch"
    assert (
        uploaded.object == "file" and uploaded.status == "processed" and uploaded.bytes == path.stat().st_size
    )

    # when: it is submitted (and a one-line batch after it, for the list)
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/embeddings",
        completion_window="24h",
        metadata={"run": "first"},
    )
    small = client.files.create(
        file=write_batch(
            tmp_path / "small.jsonl", [request_line("one", {"model": "minilm-l6", "input": "hi"})]
        ),
        purpose="batch",
    )
    second = client.batches.create(input_file_id=small.id, endpoint="/v1/embeddings", completion_window="24h")
    assert batch.id.startswith("batch_") and batch.object == "batch" and batch.status == "validating"
    assert isinstance(batch.created_at, int) and batch.expires_at == batch.created_at + 24 * 3600
    assert batch.metadata == {"run": "first"} and batch.input_file_id == uploaded.id
    done = wait_batch(client, batch.id)

    # then: it completed with every line accounted for, at Unix-second times in order
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (
        46,
        40,
        6,
    )
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert batch.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at
    assert done.failed_at is None and done.cancelled_at is None and done.errors is None
    assert done.output_file_id and done.error_file_id

    # and: one output line per good request, in input order, the vectors of sentence-transformers
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    ids = [json.loads(x)["custom_id"] for x in good]
    assert [o["custom_id"] for o in out] == ids
    assert all(o["id"].startswith("batch_req_") and o["error"] is None for o in out)
    by_id = {o["custom_id"]: o["response"] for o in out}
    assert all(r["status_code"] == 200 and r["body"]["model"] == "minilm-l6" for r in by_id.values())
    multi = by_id["req-multi"]["body"]
    assert [d["index"] for d in multi["data"]] == [0, 1, 2]
    assert multi["usage"]["prompt_tokens"] == multi["usage"]["total_tokens"] > 3
    vectors = [by_id[f"req-{i}"]["body"]["data"][0]["embedding"] for i in range(38)]
    vectors += [d["embedding"] for d in multi["data"]]
    b64 = by_id["req-b64"]["body"]["data"][0]["embedding"]
    vectors.append(np.frombuffer(base64.b64decode(b64), dtype="<f4").tolist())
    assert cosines(vectors, reference_embeddings(texts)).min() >= 0.9999

    # and: the error file says why each bad line failed, answering by custom_id where it has one
    errors = {
        e["line"]: e for e in map(json.loads, client.files.content(done.error_file_id).text.splitlines())
    }
    bad_lines = [11, 12, 13, 34, 35, 36]
    assert sorted(errors) == bad_lines
    codes = {line: (errors[line]["custom_id"], errors[line]["error"]["code"]) for line in bad_lines}
    assert list(codes.values()) == [
        (None, "invalid_json"),
        ("req-url", "invalid_url"),
        ("req-noinput", "missing_input"),
        ("req-nomodel", "model_not_found"),
        ("req-get", "invalid_method"),
        (None, "invalid_custom_id"),
    ]
    assert errors[11]["response"] is None and errors[36]["response"] is None
    assert errors[12]["response"]["status_code"] == 400 and errors[34]["response"]["status_code"] == 404
    assert errors[12]["response"]["body"]["error"]["code"] == "invalid_url"

    # and: the batch is a job, listed newest first page by page, and a finished batch can't be cancelled
    job = httpx.get(
        f"{server}/v1/jobs/job_{batch.id.removeprefix('batch_')}",
        headers={"Authorization": f"Bearer {client.api_key}"},
    ).json()
    assert (
        job["type"] == "batch" and job["status"] == "succeeded" and job["output_file"] == done.output_file_id
    )
    assert wait_batch(client, second.id).status == "completed"
    assert [b.id for b in client.batches.list(limit=1)] == [second.id, batch.id]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)

    # and: another tenant sees none of it
    other = sdk(server, worker_settings, "globex")
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(done.output_file_id)
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(batch.id)
    assert other.batches.list().data == []


def test_a_batch_cancelled_before_it_runs_ends_cancelled(
    server: str, worker_settings: Settings, tmp_path: Path
) -> None:
    # given: a submitted batch that no worker has taken yet
    client = sdk(server, worker_settings, "acme")
    lines = [request_line(f"r{i}", {"model": "minilm-l6", "input": f"text {i}"}) for i in range(5)]
    uploaded = client.files.create(file=write_batch(tmp_path / "b.jsonl", lines), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    # when: it is cancelled, and the finalizer runs
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and isinstance(cancelling.cancelling_at, int)
    assert finalize_job("job_" + batch.id.removeprefix("batch_"), worker_settings) == "cancelled"
    # then: it is cancelled with nothing done, and cannot be cancelled again
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None and done.completed_at is None
    assert done.request_counts is not None and done.request_counts.completed == 0
    assert done.error_file_id is None and done.output_file_id is not None
    assert client.files.content(done.output_file_id).content == b""
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_a_batch_is_refused_at_submit_when_it_cannot_run(
    server: str, worker_settings: Settings, tmp_path: Path
) -> None:
    client = sdk(server, worker_settings, "acme")
    good = client.files.create(
        file=write_batch(tmp_path / "ok.jsonl", [request_line("a", {"model": "minilm-l6", "input": "x"})]),
        purpose="batch",
    )
    unknown = client.files.create(
        file=write_batch(tmp_path / "unknown.jsonl", [request_line("a", {"model": "gpt-x", "input": "x"})]),
        purpose="batch",
    )
    useless = client.files.create(
        file=write_batch(tmp_path / "useless.jsonl", [request_line("a", {"model": "minilm-l6"})]),
        purpose="batch",
    )
    records = client.files.create(
        file=write_batch(tmp_path / "in.jsonl", ['{"text": "x"}']),
        purpose="input",  # type: ignore[arg-type]  # inferq's purpose for job input, not OpenAI's
    )
    cases: list[tuple[dict[str, Any], type[openai.APIStatusError], str]] = [
        (
            {"input_file_id": good.id, "endpoint": "/v1/chat/completions"},
            openai.BadRequestError,
            "unsupported_endpoint",
        ),
        ({"input_file_id": good.id, "completion_window": "48h"}, openai.BadRequestError, "invalid_value"),
        ({"input_file_id": unknown.id}, openai.NotFoundError, "model_not_found"),
        ({"input_file_id": useless.id}, openai.UnprocessableEntityError, "no_valid_requests"),
        ({"input_file_id": records.id}, openai.BadRequestError, "invalid_file_purpose"),
        ({"input_file_id": "file_0000000000000000000000000a"}, openai.NotFoundError, "file_not_found"),
    ]
    for change, error, code in cases:
        body: dict[str, Any] = {"endpoint": "/v1/embeddings", "completion_window": "24h", **change}
        # when: the batch is submitted
        with pytest.raises(error) as info:
            client.batches.create(**body)
        # then: the SDK raises the status's error, with inferq's code
        assert isinstance(info.value.body, dict) and info.value.body.get("code") == code, info.value.body
    assert client.batches.list().data == []


def test_embeddings_answer_at_once_with_the_vectors_of_the_job_path(
    embeddings_server: str, embedder_settings: Settings
) -> None:
    server = embeddings_server
    client = sdk(server, embedder_settings, "acme")
    texts = real_sentences(3)
    want = reference_embeddings(texts)
    # when: one string (the SDK asks base64 and decodes it), then a list as floats, then base64 asked for
    one = client.embeddings.create(model="minilm-l6", input=texts[0])
    many = client.embeddings.create(model="minilm-l6", input=texts, encoding_format="float")
    raw = client.embeddings.create(model="minilm-l6", input=texts, encoding_format="base64", dimensions=384)
    # then: the same vectors as sentence-transformers, in input order, with their token counts
    assert one.object == "list" and one.model == "minilm-l6" and len(one.data) == 1
    assert len(one.data[0].embedding) == 384 and cosines([one.data[0].embedding], want[:1]).min() >= 0.9999
    assert [d.index for d in many.data] == [0, 1, 2]
    assert cosines([d.embedding for d in many.data], want).min() >= 0.9999
    assert many.usage.prompt_tokens == many.usage.total_tokens > one.usage.prompt_tokens > 2
    decoded = [np.frombuffer(base64.b64decode(str(d.embedding)), dtype="<f4").tolist() for d in raw.data]
    assert np.array_equal(
        np.asarray(decoded, dtype=np.float32), np.asarray([d.embedding for d in many.data], dtype=np.float32)
    )
    # and: what it cannot serve is refused with the status OpenAI's SDK knows
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="minilm-l6", input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="minilm-l6", input="x", dimensions=64)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="minilm-l6", input="word " * 9000)
    with pytest.raises(openai.APIStatusError) as too_many:
        client.embeddings.create(model="minilm-l6", input=["x"] * 257)
    assert too_many.value.status_code == 413
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="iq_nope", max_retries=0).embeddings.create(
            model="minilm-l6", input="x"
        )
