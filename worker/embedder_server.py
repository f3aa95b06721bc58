"""The embedder: `inferq serve-embeddings`, the process that answers `POST /v1/embeddings` for the API.

Why a process of its own: the API is thin (no torch, no models; tests/unit/test_import_graph.py keeps it
so), so the synchronous embeddings it promises are computed here, in the worker environment, and the API
forwards each request over HTTP (`inferq.api.embedder`, `INFERQ_EMBEDDINGS_URL`). A Celery round trip was
the other choice; it was not taken because the embedded default's filesystem broker polls (a second or
so per hop, and no reply channel without a result backend), while a loopback HTTP call costs about a
millisecond in both the embedded default (`inferq up` starts this process) and a distributed deployment
(run it next to the workers, on a GPU host if you like, and point the API at it).

Micro-batching: requests wait in one queue; a single thread takes the first and everything else waiting
at that moment (no added delay), groups them by model, and runs each group through the workers'
`run_predictions` loop in one go, so concurrent small requests share batches. A text gets the same
vector here as in a job (same predictor, same batching rules, same float32 writer). One model run at a
time per process: predictors are not shared between threads.

It trusts its callers (the API resolves models and checks tenants): bind it to loopback or an internal
network, as Redis is.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson

from inferq.shared.embedder_protocol import (
    EMBED_PATH,
    HEALTH_PATH,
    MAX_INPUT_TOKENS,
    error_body,
    model_from_wire,
)
from inferq.shared.errors import InferqError, InvalidRequest
from inferq.shared.registry import ResolvedModel
from inferq.shared.settings import Settings
from inferq.shared.storage import Storage, get_storage
from inferq.shared.tasks import EMBEDDING
from inferq.worker.inference import batching_for, run_predictions
from inferq.worker.model_cache import ModelCache

log = logging.getLogger(__name__)

DEVICE = "cpu"
# At most this many texts go into one model run; more waiting requests wait for the next run.
MAX_RUN_TEXTS = 1024

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass
class Pending:
    """One request waiting for its vectors: its answer (the JSON body) arrives through `done`."""

    model: ResolvedModel
    texts: list[str]
    done: Future[bytes] = field(default_factory=Future)


def check_lengths(tokenizer: Any, texts: list[str]) -> None:
    """Refuse a text of more than MAX_INPUT_TOKENS tokens, as OpenAI does. A text of at most that many
    UTF-8 bytes cannot have more tokens, so only longer ones are tokenized for the check."""
    for i, text in enumerate(texts):
        if len(text.encode("utf-8")) <= MAX_INPUT_TOKENS:
            continue
        ids = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        if len(ids) > MAX_INPUT_TOKENS:
            raise InvalidRequest(
                f"input[{i}] has {len(ids)} tokens; at most {MAX_INPUT_TOKENS} are accepted",
                field="input",
                code="input_too_long",
            )


class Embedder:
    """The queue of waiting requests and the one thread that runs them, batched."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.cache = ModelCache(settings.model_cache_size)
        self.waiting: queue.Queue[Pending | None] = queue.Queue()
        self.runs = 0  # model runs, and the requests they answered (shown by GET /healthz)
        self.requests = 0
        self.thread = threading.Thread(target=self._loop, name="embedder", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.waiting.put(None)
        self.thread.join(timeout=30)

    def submit(self, model: ResolvedModel, texts: list[str]) -> Future[bytes]:
        pending = Pending(model, texts)
        self.waiting.put(pending)
        return pending.done

    def _take(self) -> list[Pending] | None:
        """The first waiting request (blocking) and whatever else waits now, up to MAX_RUN_TEXTS texts."""
        first = self.waiting.get()
        if first is None:
            return None
        taken, count = [first], len(first.texts)
        while count < MAX_RUN_TEXTS:
            try:
                more = self.waiting.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self.waiting.put(None)  # stop after this run
                break
            taken.append(more)
            count += len(more.texts)
        return taken

    def _loop(self) -> None:
        while (taken := self._take()) is not None:
            groups: dict[str, list[Pending]] = {}
            for pending in taken:
                groups.setdefault(pending.model.cache_key, []).append(pending)
            for group in groups.values():
                try:
                    self._run(group)
                except Exception as e:  # every waiting request hears of it, the loop goes on
                    log.exception("embedding run failed for %s", group[0].model.ref)
                    for pending in group:
                        if not pending.done.done():
                            pending.done.set_exception(e)

    def _run(self, group: list[Pending]) -> None:
        model = group[0].model
        predictor = self.cache.get(model, EMBEDDING, self.storage, self.settings.model_cache_dir, DEVICE)
        runnable: list[Pending] = []
        for pending in group:
            try:
                check_lengths(getattr(predictor, "tokenizer", None), pending.texts)
            except InferqError as e:
                pending.done.set_exception(e)
                continue
            runnable.append(pending)
        if not runnable:
            return
        self.runs += 1
        self.requests += len(runnable)
        texts = [text for pending in runnable for text in pending.texts]
        batch_tokens, max_batch_size = batching_for(
            predictor.device, self.settings.batch_tokens, self.settings.max_batch_size
        )
        result = run_predictions(
            predictor, texts, {}, batch_tokens=batch_tokens, max_batch_size=max_batch_size
        )
        log.debug(
            "embedded %d texts of %d requests with %s: %s", len(texts), len(runnable), model.ref, result.stats
        )
        start = 0
        for pending in runnable:
            end = start + len(pending.texts)
            # orjson's float32 writer: the same shortest decimals as a job's output lines.
            body = orjson.dumps(
                {
                    "vectors": [out["embedding"] for out in result.outputs[start:end]],
                    "tokens": result.tokens[start:end],
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            pending.done.set_result(body)
            start = end


def _answer(start_response: StartResponse, status: int, body: bytes) -> Iterable[bytes]:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}.get(status, "")
    start_response(
        f"{status} {reason}".strip(),
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _error(
    start_response: StartResponse, status: int, code: str, message: str, field: str | None = None
) -> Iterable[bytes]:
    return _answer(start_response, status, orjson.dumps(error_body(code, message, field)))


def make_wsgi_app(
    embedder: Embedder, timeout: float
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The embedder's HTTP side: `POST /v1/embed` and `GET /healthz` (shared/embedder_protocol.py)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == HEALTH_PATH and method == "GET":
            health = {"status": "ok", "runs": embedder.runs, "requests": embedder.requests}
            return _answer(start_response, 200, orjson.dumps(health))
        if path != EMBED_PATH or method != "POST":
            return _error(start_response, 404, "not_found", f"only POST {EMBED_PATH} and GET {HEALTH_PATH}")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = orjson.loads(environ["wsgi.input"].read(length))
            model = model_from_wire(request.get("model"))
            texts = request.get("inputs")
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise ValueError("'inputs' must be a non-empty list of strings")
        except (ValueError, AttributeError) as e:  # orjson.JSONDecodeError is a ValueError
            return _error(start_response, 400, "invalid_request", f"not an embed request: {e}")
        try:
            body = embedder.submit(model, texts).result(timeout=timeout)
        except InferqError as e:
            return _error(start_response, e.status, e.code, e.message, e.field)
        except Exception:
            log.exception("embedding %d texts with %s failed", len(texts), model.ref)
            return _error(start_response, 500, "internal_error", "the embedder failed; see its log")
        return _answer(start_response, 200, body)

    return app


def serve(settings: Settings, host: str, port: int, threads: int) -> None:
    """Run the embedder in the foreground (waitress) until the process is stopped."""
    import waitress

    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    embedder = Embedder(settings, get_storage(settings))
    embedder.start()
    log.info("inferq embedder on http://%s:%d", host, port)
    try:
        waitress.serve(
            make_wsgi_app(embedder, timeout=float(settings.embeddings_timeout_seconds)),
            host=host,
            port=port,
            threads=threads,
            ident="inferq-embedder",
        )
    finally:
        embedder.stop()
