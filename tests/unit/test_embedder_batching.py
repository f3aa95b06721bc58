"""The embedder's micro-batching (worker/embedder_server.py), on the real built-in model: requests that
wait together share one model run, and each still gets exactly its own vectors and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from inferq.shared.errors import InferqError
from inferq.shared.registry import BUILTINS
from inferq.shared.settings import Settings
from inferq.shared.storage import get_storage
from inferq.worker.embedder_server import Embedder
from tests.e2e.inputs import real_sentences

MINILM = BUILTINS["minilm-l6"]


@pytest.fixture
def embedder(tmp_path: Path) -> Embedder:
    settings = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path), "INFERQ_TORCH_THREADS": "1"})
    return Embedder(settings, get_storage(settings))


def test_waiting_requests_share_one_run_and_each_gets_its_own_answer(embedder: Embedder) -> None:
    texts = real_sentences(7)
    # given: each text embedded alone, one run each
    embedder.start()
    try:
        alone = [orjson.loads(embedder.submit(MINILM, [t]).result(timeout=120)) for t in texts]
        runs_before = embedder.runs
    finally:
        embedder.stop()
    # and: a fresh embedder (not started yet) with four requests waiting, one of them too long
    waiting = [texts[0:1], texts[1:4], ["word " * 9000], texts[4:7]]
    batched = Embedder(embedder.settings, embedder.storage)
    futures = [batched.submit(MINILM, request) for request in waiting]

    # when: it starts
    batched.start()
    try:
        answers = [
            f.result(timeout=120) if f.exception(timeout=120) is None else f.exception() for f in futures
        ]
    finally:
        batched.stop()

    # then: the three good requests were answered by one model run
    assert runs_before == len(texts)
    assert (batched.runs, batched.requests) == (1, 3)
    # and: each got the vectors and token counts of its own texts, in order: those made alone (up to the
    # rounding that another batch shape gives, bf16 on a CPU with AMX)
    good = [orjson.loads(a) for a in answers if isinstance(a, bytes)]
    assert [len(g["vectors"]) for g in good] == [1, 3, 3]
    got = np.asarray([v for g in good for v in g["vectors"]], dtype=np.float32)
    want = np.asarray([a["vectors"][0] for a in alone], dtype=np.float32)
    cosines = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() >= 0.9999
    assert [n for g in good for n in g["tokens"]] == [a["tokens"][0] for a in alone]
    # and: the too-long one alone was refused, as the API refuses it
    refused = answers[2]
    assert isinstance(refused, InferqError) and refused.code == "input_too_long" and refused.status == 400
