"""The result cache's keys, stored results and per-part plan (worker.result_cache), and the runner glue
(worker.result_cache_store.predict_cached) with the database lookup replaced."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import orjson
import pytest
from PIL import Image

from inferq.shared.records import Record, dumps_line
from inferq.shared.registry import BUILTINS, ResolvedModel
from inferq.worker import result_cache_store
from inferq.worker.images import decode_base64_image
from inferq.worker.result_cache import (
    KeySpace,
    cache_message,
    cache_metrics,
    decode_result,
    encode_result,
    input_digest,
    normalize_text,
    plan_part,
    wanted,
)

MINILM = BUILTINS["minilm-l6"]
SENTIMENT = ResolvedModel(
    name="sentiment",
    version=3,
    task="text-classification",
    source="t/ten_1/models/sentiment/3/",
    version_id="mv_abc",
    weights_sha256="a" * 64,
)


def space(
    model: ResolvedModel = MINILM, task: str = "embedding", precision: str = "fp32", **params: Any
) -> KeySpace:
    return KeySpace.of(model, task, params, precision)


def png(pixels: list[list[tuple[int, int, int]]], **save: Any) -> str:
    image = Image.new("RGB", (len(pixels[0]), len(pixels)))
    image.putdata([p for row in pixels for p in row])
    buf = io.BytesIO()
    image.save(buf, format="PNG", **save)
    return base64.b64encode(buf.getvalue()).decode()


# ---- keys ------------------------------------------------------------------------------------------


def test_text_is_normalized_to_nfc_and_stripped() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert normalize_text(decomposed) == composed
    assert normalize_text("  \tcaf\u00e9 \n") == composed
    s = space()
    assert s.key(decomposed) == s.key(composed) == s.key(f"  {composed}\n")
    # inner whitespace and case are the text itself
    assert s.key("a b") != s.key("a  b")
    assert s.key("Cafe") != s.key("cafe")


def test_key_is_sha256_hex_and_stable() -> None:
    key = space().key("hello")
    assert key is not None and len(key) == 64 and int(key, 16) >= 0
    assert space().key("hello") == key
    assert space().key("hello!") != key


@pytest.mark.parametrize(
    ("name", "a", "b"),
    [
        ("normalize", True, False),
        ("max_length", 128, 256),
        ("top_k", 1, 2),
        ("explain", False, True),
    ],
)
def test_output_params_change_the_key(name: str, a: Any, b: Any) -> None:
    assert space(**{name: a}).key("x") != space(**{name: b}).key("x")
    # absent is not replaced by the model's default: a different key, never a wrong hit
    assert space().key("x") != space(**{name: a}).key("x")


@pytest.mark.parametrize(("name", "a", "b"), [("batch_tokens", 512, 4096), ("output_format", None, "jsonl")])
def test_batching_and_format_params_do_not_change_the_key(name: str, a: Any, b: Any) -> None:
    assert space(**{name: a}).key("x") == space(**{name: b}).key("x") == space().key("x")
    assert space(cache=True).key("x") == space().key("x")


def test_precision_in_the_key_is_the_one_the_part_runs() -> None:
    # `auto` on a CPU without bf16 runs fp32: the same results as an explicit fp32, or none given
    auto_on_cpu = KeySpace.of(MINILM, "embedding", {"precision": "auto"}, "fp32")
    explicit = KeySpace.of(MINILM, "embedding", {"precision": "fp32"}, "fp32")
    assert auto_on_cpu.key("x") == explicit.key("x") == space(precision="fp32").key("x")
    auto_on_gpu = KeySpace.of(MINILM, "embedding", {"precision": "auto"}, "bf16")
    assert auto_on_gpu.key("x") != auto_on_cpu.key("x")


def test_model_version_and_task_change_the_key() -> None:
    base = space(SENTIMENT, "text-classification").key("x")
    assert space(MINILM, "embedding").key("x") != base
    variants = [
        ResolvedModel(**{**SENTIMENT.__dict__, "version": 4}),
        ResolvedModel(**{**SENTIMENT.__dict__, "version_id": "mv_other"}),
        ResolvedModel(**{**SENTIMENT.__dict__, "weights_sha256": "b" * 64}),
    ]
    for model in variants:
        assert space(model, "text-classification").key("x") != base
    # the storage location alone is not the identity: the same version, weights and id share results
    moved = ResolvedModel(**{**SENTIMENT.__dict__, "source": "elsewhere/"})
    assert space(moved, "text-classification").key("x") == base
    assert space(SENTIMENT, "image-classification").key("x") != base


def test_images_are_keyed_by_their_pixels_not_their_encoding() -> None:
    red, blue = (255, 0, 0), (0, 0, 255)
    pixels = [[red, blue], [blue, red]]
    one = decode_base64_image(png(pixels))
    same_pixels = decode_base64_image("data:image/png;base64," + png(pixels, compress_level=0))
    other = decode_base64_image(png([[red, red], [blue, red]]))
    s = space(SENTIMENT, "image-classification")
    assert s.key(one) == s.key(same_pixels) is not None
    assert s.key(one) != s.key(other)
    digest = input_digest(one)
    assert digest is not None and digest.startswith("image:")
    assert input_digest("text") != input_digest(one)


def test_values_the_cache_does_not_know_have_no_key() -> None:
    assert space().key(12) is None
    assert space().key(("text", "label")) is None


def test_only_predict_jobs_that_ask_use_the_cache() -> None:
    assert wanted("predict", {"cache": True})
    assert not wanted("predict", {})
    assert not wanted("predict", {"cache": False})
    assert not wanted("evaluate", {"cache": True})
    assert not wanted("batch", {"cache": True})


# ---- stored results --------------------------------------------------------------------------------


def test_served_lines_are_byte_identical_to_computed_ones() -> None:
    vector = np.array([0.1, -4.0512905e-6, 1.0, 3.4028235e38, 1e-45, 0.33333334], dtype=np.float32)
    outputs: list[dict[str, Any]] = [
        {"embedding": vector},
        {"label": "pos", "score": 0.7310585975646973, "scores": {"pos": 0.7310585975646973, 'ne"g': 0.26}},
        {"label": "x", "explanation": {"tokens": ["caf\u00e9", "\u2603"], "attributions": [0.5, -1e-7]}},
    ]
    for out in outputs:
        stored = encode_result(out)
        assert isinstance(orjson.loads(stored), dict)
        served = decode_result(stored)
        assert list(served) == list(out)
        assert dumps_line({"id": "other", **served}) == dumps_line({"id": "other", **out})


def test_a_result_that_is_not_a_stored_result_does_not_decode() -> None:
    with pytest.raises(ValueError):
        decode_result('{"embedding": [1, 2]}')
    with pytest.raises(ValueError):
        decode_result("[1]")


# ---- a part's plan ---------------------------------------------------------------------------------


def test_plan_computes_misses_once_and_serves_hits_and_duplicates_in_order() -> None:
    stored = {"k1": encode_result({"v": 1}), "bad": "not json at all"}
    # records: miss k0, hit k1, uncacheable, duplicate of k0, hit k1 again, a bad stored row, miss k3
    keys = ["k0", "k1", None, "k0", "k1", "bad", "k3"]
    plan = plan_part(keys, stored)
    assert plan.compute == [0, 2, 5, 6]
    assert plan.hits == 2 and plan.duplicates == 1 and plan.bad_results == 1
    assert plan.stats() == {"cache_hits": 2, "cache_misses": 5, "cache_computed": 4, "cache_duplicates": 1}

    merged = plan.merge([{"v": "a"}, {"v": "b"}, {"v": "c"}, {"v": "d"}], [10, 20, 30, 40])
    lines = [dumps_line({"id": str(i), **o}) for i, o in enumerate(merged.outputs)]
    assert [orjson.loads(x)["v"] for x in lines] == ["a", 1, "b", "a", 1, "c", "d"]
    assert merged.tokens == [10, 0, 20, 0, 0, 30, 40]
    # new results: the computed records that have a key (the bad row stays: inserts never overwrite)
    assert merged.new_results == {
        "k0": encode_result({"v": "a"}),
        "bad": encode_result({"v": "c"}),
        "k3": encode_result({"v": "d"}),
    }


def test_merge_refuses_a_wrong_number_of_outputs() -> None:
    plan = plan_part(["a", "b"], {})
    with pytest.raises(RuntimeError):
        plan.merge([{"v": 1}], [1])


def test_cache_metrics_and_message() -> None:
    stats = [
        {"cache_hits": 900, "cache_misses": 100, "batches": 3},
        None,
        {"cache_hits": 50, "cache_misses": 0},
        {"error": {"code": "worker_lost"}},
    ]
    totals = cache_metrics(stats)
    assert totals == {"cache_hits": 950, "cache_misses": 100}
    assert cache_message(totals) == "result cache: 950 of 1050 records served from earlier results"
    assert cache_metrics([{"batches": 2}, None]) == {}


# ---- the runner's glue -----------------------------------------------------------------------------


def test_predict_cached_runs_the_model_on_distinct_misses_only(monkeypatch: pytest.MonkeyPatch) -> None:
    s = space()
    texts = ["alpha", "beta", "alpha ", "gamma", "beta"]
    records = [Record(i, i + 1, f"id{i}", t) for i, t in enumerate(texts)]
    key_beta = s.key("beta")
    assert key_beta is not None
    served = {"embedding": np.array([0.5, 0.25], dtype=np.float32)}
    looked_up: list[set[str]] = []

    def lookup(settings: Any, tenant_id: str, keys: Any) -> dict[str, str]:
        wanted_keys = set(keys)
        looked_up.append(wanted_keys)
        assert tenant_id == "ten_1"
        return {key_beta: encode_result(served)}

    calls: list[tuple[list[str], int]] = []

    def predict(todo: list[Record], done: int) -> tuple[list[dict[str, Any]], dict[str, Any], list[int]]:
        calls.append(([r.value for r in todo], done))
        return (
            [{"embedding": [float(len(r.value))]} for r in todo],
            {"batches": 1, "tokens": 7},
            [3] * len(todo),
        )

    monkeypatch.setattr(result_cache_store, "lookup", lookup)
    outputs, stats, tokens, new = result_cache_store.predict_cached(
        None,  # type: ignore[arg-type]
        "ten_1",
        s,
        records,
        predict,
    )
    assert looked_up == [{s.key(t) for t in texts}]
    assert calls == [(["alpha", "gamma"], 3)]  # "alpha " is alpha; both betas are hits
    lines = [dumps_line({"id": r.id, **o}) for r, o in zip(records, outputs, strict=True)]
    assert [orjson.loads(x) for x in lines] == [
        {"id": "id0", "embedding": [5.0]},
        {"id": "id1", "embedding": [0.5, 0.25]},
        {"id": "id2", "embedding": [5.0]},
        {"id": "id3", "embedding": [5.0]},
        {"id": "id4", "embedding": [0.5, 0.25]},
    ]
    assert tokens == [3, 0, 0, 3, 0]
    assert stats["cache_hits"] == 2 and stats["cache_misses"] == 3
    assert stats["cache_computed"] == 2 and stats["cache_duplicates"] == 1
    assert stats["batches"] == 1 and stats["precision"] == "fp32"
    assert set(new) == {s.key("alpha"), s.key("gamma")}


def test_predict_cached_with_every_record_a_hit_never_runs_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    s = space()
    records = [Record(0, 1, "a", "one"), Record(1, 2, "b", "one")]
    key = s.key("one")
    assert key is not None
    monkeypatch.setattr(result_cache_store, "lookup", lambda *a: {key: encode_result({"embedding": [1.0]})})

    def predict(todo: list[Record], done: int) -> tuple[list[dict[str, Any]], dict[str, Any], list[int]]:
        assert todo == [] and done == 2
        return [], {"batches": 0}, []

    outputs, stats, _, new = result_cache_store.predict_cached(None, "t", s, records, predict)  # type: ignore[arg-type]
    assert [orjson.loads(dumps_line(o)) for o in outputs] == [{"embedding": [1.0]}] * 2
    assert stats["cache_hits"] == 2 and stats["cache_misses"] == 0 and new == {}
