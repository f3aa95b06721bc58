"""`POST /v1/embeddings` through a real embedder process (`inferq serve-embeddings`) on Postgres, Redis and
moto S3: concurrent requests share model runs, and no embedder within the timeout is a 503."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from flask import Flask

from inferq.api.app import create_app
from inferq.shared.settings import Settings
from tests.e2e.inputs import real_sentences, reference_embeddings
from tests.helpers.embedder import running_embedder
from tests.helpers.tenant_http import new_tenant_key

pytestmark = pytest.mark.integration


def post_embeddings(settings: Settings, key: str, texts: list[str], app: Flask | None = None) -> Any:
    """One request through a test client of the API on `settings` (one client per thread). Threads get
    apps made beforehand: Python 3.11's AST constructor, which Flask's routing compiles with, is not
    thread-safe ("AST constructor recursion depth mismatch")."""
    client = (app or create_app(settings)).test_client()
    return client.post(
        "/v1/embeddings",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "minilm-l6", "input": texts},
    )


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: its http:// URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_concurrent_requests_share_model_runs_and_get_their_own_vectors(embedder_settings: Settings) -> None:
    key = new_tenant_key(embedder_settings, "acme")
    texts = real_sentences(48)
    requests = [texts[i : i + 4] for i in range(0, 48, 4)]
    assert post_embeddings(embedder_settings, key, ["warm up"]).status_code == 200
    before = httpx.get(f"{embedder_settings.embeddings_url}/healthz").json()

    # when: 12 requests of 4 texts are sent at once from 12 threads
    apps = [create_app(embedder_settings) for _ in requests]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda a, t: post_embeddings(embedder_settings, key, t, a), apps, requests))

    # then: each is answered with the vectors of its own texts, in order
    assert [a.status_code for a in answers] == [200] * len(requests), [a.get_json() for a in answers]
    got = np.asarray([d["embedding"] for a in answers for d in a.get_json()["data"]], dtype=np.float32)
    want = reference_embeddings(texts)
    cosines = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() >= 0.9999
    # and: the embedder answered them in fewer model runs than requests
    after = httpx.get(f"{embedder_settings.embeddings_url}/healthz").json()
    assert after["requests"] - before["requests"] == len(requests)
    assert after["runs"] - before["runs"] < len(requests), after


def test_an_embedder_that_does_not_answer_in_time_is_a_503(
    worker_settings: Settings, silent_server: str
) -> None:
    # given: the API pointed at a server that takes the connection and never answers, 1 s allowed
    settings = worker_settings.with_overrides(embeddings_url=silent_server, embeddings_timeout_seconds=1)
    key = new_tenant_key(settings, "acme")

    # when: an embeddings request is sent
    started = time.monotonic()
    r = post_embeddings(settings, key, ["hello"])

    # then: after about the timeout, a 503 in the error shape that says to retry
    assert 1 <= time.monotonic() - started < 10
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.get_json()["error"]["code"] == "embedder_unavailable"


def test_a_stopped_embedder_is_a_503_and_a_restarted_one_serves_again(
    worker_settings: Settings, tmp_path: Path
) -> None:
    key = new_tenant_key(worker_settings, "acme")
    # given: an embedder that served a request and was then stopped
    with running_embedder(worker_settings, tmp_path / "first.log") as url:
        settings = worker_settings.with_overrides(embeddings_url=url)
        assert post_embeddings(settings, key, ["hello"]).status_code == 200

    # when: a request comes while none runs
    down = post_embeddings(settings, key, ["hello"])

    # then: 503 at once (nothing listens), in the error shape
    assert down.status_code == 503 and down.get_json()["error"]["code"] == "embedder_unavailable"
    # and: a new embedder serves the API again, nothing else restarted
    with running_embedder(worker_settings, tmp_path / "second.log") as url:
        again = post_embeddings(worker_settings.with_overrides(embeddings_url=url), key, ["hello"])
    assert again.status_code == 200 and len(again.get_json()["data"][0]["embedding"]) == 384
