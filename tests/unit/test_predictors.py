"""Predictors and the batching loop: parity with sentence-transformers, classifier outputs, order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inferq.shared.errors import InvalidRequest
from inferq.shared.registry import builtin_path
from inferq.worker import inference
from inferq.worker.inference import (
    PredictionResult,
    Stopped,
    autocast_dtype,
    cpu_flags_have_bf16,
    cpu_has_bf16,
    resolve_device,
    run_predictions,
)
from inferq.worker.predictors import PREDICTORS, load_predictor, use_planless_attention
from inferq.worker.predictors.embedding import EmbeddingPredictor
from inferq.worker.predictors.text_classification import TextClassificationPredictor
from tests.e2e.inputs import real_sentences
from tests.helpers.tiny_models import make_tiny_text_classifier

CPU = torch.device("cpu")
LABELS = ["negative", "neutral", "positive"]
MINILM_CONFIG = {"pooling": "mean", "normalize": True, "max_length": 256, "dimensions": 384}

LONG_TEXT = " ".join(
    [
        "Bulk inference services split large uploads into parts, run each part on a worker with a lease,",
        "sort the records of a part by length so that batches carry little padding, and write the results",
        "back in input order so that every output line can be joined with the record it came from.",
    ]
    * 6
)
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome",
    "The cat sits outside",
    "The new movie is so great",
    "A man is playing guitar",
    "Do you like pizza?",
    "The weather in Paris is lovely in spring, although it rains more often than tourists expect.",
    "Quantum computers use qubits, which can be in superpositions of zero and one.",
    "hi",
    "ok",
    "Embeddings map sentences to vectors so that similar meanings end up close together.",
    "Le chat est assis sur le tapis.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。",
    "😀 emojis and punctuation!!! ... ???",
    "   leading and trailing spaces   ",
    "Numbers like 3.14159, 2,718 and 1e-9 appear in scientific text.",
    "The stock market fell sharply on Tuesday after the central bank raised interest rates again.",
    "She sells sea shells by the sea shore.",
    "A very long sentence that goes on and on, " * 8,
    LONG_TEXT,
    "",
]


@pytest.fixture(scope="module")
def embedder() -> EmbeddingPredictor:
    predictor = load_predictor("embedding", builtin_path("minilm-l6"), CPU, MINILM_CONFIG)
    assert isinstance(predictor, EmbeddingPredictor)
    return predictor


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> TextClassificationPredictor:
    folder = make_tiny_text_classifier(tmp_path_factory.mktemp("tiny-clf"), LABELS)
    predictor = load_predictor("text-classification", folder, CPU, {})
    assert isinstance(predictor, TextClassificationPredictor)
    return predictor


def embed(
    predictor: EmbeddingPredictor, texts: list[str], params: dict[str, Any] | None = None, **kw: Any
) -> torch.Tensor:
    kw.setdefault("batch_tokens", 2048)
    kw.setdefault("max_batch_size", 8)
    result = run_predictions(predictor, texts, params or {}, **kw)
    return torch.tensor(np.stack([o["embedding"] for o in result.outputs]))


# --------------------------------------------------------------------------------------------- embedding


def test_embeddings_match_sentence_transformers(embedder: EmbeddingPredictor) -> None:
    from sentence_transformers import SentenceTransformer

    # given the reference implementation on the same folder, and a text longer than 256 tokens
    reference = SentenceTransformer(str(builtin_path("minilm-l6")), device="cpu")
    assert len(embedder.tokenizer(LONG_TEXT)["input_ids"]) > 256
    expected = reference.encode(SENTENCES, convert_to_tensor=True, batch_size=8).float()
    # when embedded through the batching loop (length-sorted, small batches)
    ours = embed(embedder, SENTENCES, batch_tokens=1024, max_batch_size=4)
    # then every vector points the same way and has the same length
    assert ours.shape == (len(SENTENCES), 384)
    cosine = F.cosine_similarity(ours, expected.cpu())
    assert cosine.min().item() >= 0.9999, cosine
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-4)


def test_the_long_text_is_truncated_to_the_model_setting(embedder: EmbeddingPredictor) -> None:
    prepared = embedder.preprocess([LONG_TEXT, "short"], {})
    assert prepared.lengths[0] == 256 and prepared.lengths[1] < 10
    assert embedder.preprocess([LONG_TEXT], {"max_length": 32}).lengths == [32]
    # a max_length beyond the model's positions is capped at them
    assert embedder.preprocess([LONG_TEXT * 3], {"max_length": 100_000}).lengths == [512]


def test_max_length_must_be_a_positive_integer(embedder: EmbeddingPredictor) -> None:
    with pytest.raises(InvalidRequest):
        embedder.preprocess(["a"], {"max_length": 0})
    with pytest.raises(InvalidRequest):
        embedder.preprocess(["a"], {"max_length": "64"})


def test_normalize_false_keeps_the_raw_mean(embedder: EmbeddingPredictor) -> None:
    texts = SENTENCES[:4]
    raw = embed(embedder, texts, {"normalize": False})
    unit = embed(embedder, texts, {"normalize": True})
    assert not torch.allclose(raw.norm(dim=1), torch.ones(4), atol=1e-2)
    assert torch.allclose(F.normalize(raw, dim=1), unit, atol=1e-5)
    with pytest.raises(InvalidRequest):
        embed(embedder, texts, {"normalize": "yes"})


@pytest.mark.parametrize("mode", ["cls", "max", "mean_sqrt_len"])
def test_other_pooling_modes(mode: str) -> None:
    predictor = load_predictor(
        "embedding", builtin_path("minilm-l6"), CPU, {**MINILM_CONFIG, "pooling": mode}
    )
    assert isinstance(predictor, EmbeddingPredictor)
    batch = predictor.collate(
        predictor.preprocess(["a short one", "a somewhat longer sentence here"], {}), [0, 1]
    )
    with torch.inference_mode():
        pooled = predictor.forward(batch)
        hidden = predictor.model(**batch).last_hidden_state
    assert pooled.shape == (2, 384)
    if mode == "cls":
        assert torch.allclose(pooled, hidden[:, 0], atol=1e-6)
    if mode == "max":
        # the short item's max ignores its padded positions
        n = int(batch["attention_mask"][0].sum())
        assert torch.allclose(pooled[0], hidden[0, :n].max(dim=0).values, atol=1e-6)


def test_unknown_pooling_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="pooling"):
        load_predictor("embedding", builtin_path("minilm-l6"), CPU, {"pooling": "median"})


def test_outputs_come_back_in_input_order(embedder: EmbeddingPredictor) -> None:
    # given texts whose lengths are not sorted, batched several ways
    texts = SENTENCES[:12]
    one_by_one = torch.cat([embed(embedder, [t]) for t in texts])
    # when batched by length under a tight budget
    batched = embed(embedder, texts, batch_tokens=64, max_batch_size=3)
    # then each output is the one of its own input
    assert F.cosine_similarity(batched, one_by_one).min().item() > 0.99999


def test_stats_describe_the_run(embedder: EmbeddingPredictor) -> None:
    result = run_predictions(embedder, SENTENCES[:10], {}, batch_tokens=128, max_batch_size=4)
    stats = result.stats
    assert stats["batches"] >= 3
    assert 0.0 <= stats["padding_ratio"] < 1.0
    assert stats["tokens"] == sum(embedder.preprocess(SENTENCES[:10], {}).lengths)
    assert stats["forward_seconds"] > 0 and stats["preprocess_seconds"] >= 0
    assert stats["padded_tokens"] >= stats["tokens"]
    assert stats["precision"] == ("bf16" if cpu_has_bf16() else "fp32")
    assert (
        run_predictions(
            embedder, SENTENCES[:2], {"precision": "fp32"}, batch_tokens=128, max_batch_size=4
        ).stats["precision"]
        == "fp32"
    )


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no AMX-BF16 units: auto is fp32")
def test_auto_precision_is_bf16_here_and_within_cosine_of_fp32(embedder: EmbeddingPredictor) -> None:
    # given real sentences of mixed length (the demo data), on a CPU with bf16 units
    texts = real_sentences(300)
    # when embedded with the automatic precision and with fp32
    auto = run_predictions(embedder, texts, {}, batch_tokens=4096, max_batch_size=64)
    fp32 = embed(embedder, texts, {"precision": "fp32"}, batch_tokens=4096, max_batch_size=64)
    # then auto ran in bf16 and every vector stays within cosine 0.9999 of fp32
    assert auto.stats["precision"] == "bf16"
    got = torch.tensor(np.stack([o["embedding"] for o in auto.outputs]))
    assert F.cosine_similarity(got, fp32).min().item() >= 0.9999


def test_bf16_on_cpu_when_asked(embedder: EmbeddingPredictor) -> None:
    texts = SENTENCES[:6]
    fp32 = embed(embedder, texts)
    bf16 = embed(embedder, texts, {"precision": "bf16"})
    assert F.cosine_similarity(fp32, bf16).min().item() > 0.98


def test_stopped_when_on_batch_says_so(embedder: EmbeddingPredictor) -> None:
    # given a callback that asks to stop after the second batch
    seen: list[int] = []

    def on_batch(n: int) -> bool:
        seen.append(n)
        return len(seen) < 2

    # when / then
    with pytest.raises(Stopped) as e:
        run_predictions(embedder, SENTENCES[:8], {}, batch_tokens=10_000, max_batch_size=2, on_batch=on_batch)
    assert seen == [2, 2]
    assert e.value.completed == 4


def test_on_batch_counts_add_up(embedder: EmbeddingPredictor) -> None:
    seen: list[int] = []

    def on_batch(n: int) -> bool:
        seen.append(n)
        return True

    result = run_predictions(embedder, SENTENCES, {}, batch_tokens=512, max_batch_size=5, on_batch=on_batch)
    assert sum(seen) == len(SENTENCES) == len(result.outputs)
    assert len(seen) == result.stats["batches"]


def test_one_batch_is_launched_before_the_previous_one_is_postprocessed(
    embedder: EmbeddingPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a record of when each batch is launched (forward) and finished (postprocess)
    events: list[str] = []
    forward, postprocess = embedder.forward, embedder.postprocess

    def launched(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        events.append("forward")
        return forward(batch)

    def finished(output: torch.Tensor, params: dict[str, Any]) -> list[dict[str, Any]]:
        events.append("postprocess")
        return postprocess(output, params)

    monkeypatch.setattr(embedder, "forward", launched)
    monkeypatch.setattr(embedder, "postprocess", finished)
    # when: three batches run
    result = run_predictions(embedder, SENTENCES[:6], {}, batch_tokens=10_000, max_batch_size=2)
    # then: batch n+1 goes out before batch n is read back (one in flight), and nothing is lost or reordered
    assert events == ["forward", "forward", "postprocess", "forward", "postprocess", "postprocess"]
    alone = [run_predictions(embedder, [t], {}, batch_tokens=10_000, max_batch_size=2) for t in SENTENCES[:6]]
    for got, want in zip(result.outputs, alone, strict=True):
        assert np.allclose(got["embedding"], want.outputs[0]["embedding"], atol=1e-5)


def test_gpu_workers_take_cudnn_out_of_the_attention_backends() -> None:
    # given: cuDNN attention allowed (torch's default)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        # when: what loading a predictor on a GPU does first
        use_planless_attention()
        # then: attention no longer plans per shape through cuDNN
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_no_values_no_batches(embedder: EmbeddingPredictor) -> None:
    result = run_predictions(embedder, [], {}, batch_tokens=100, max_batch_size=4)
    assert result == PredictionResult(outputs=[], stats=result.stats)
    assert result.stats["batches"] == 0


# --------------------------------------------------------------------------------------------- classification

TEXTS = [
    "this movie was great",
    "bad food",
    "hello",
    "the service was very slow and the price expensive",
    "i",
]


def classify(
    predictor: TextClassificationPredictor, texts: list[str], params: dict[str, Any], **kw: Any
) -> list[dict[str, Any]]:
    kw.setdefault("batch_tokens", 256)
    kw.setdefault("max_batch_size", 8)
    return run_predictions(predictor, texts, params, **kw).outputs


def test_classifier_scores_every_label_by_default(classifier: TextClassificationPredictor) -> None:
    outputs = classify(classifier, TEXTS, {})
    assert len(outputs) == len(TEXTS)
    for out in outputs:
        assert set(out) == {"label", "score", "scores"}
        assert set(out["scores"]) == set(LABELS)
        assert sum(out["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert out["label"] == max(out["scores"], key=out["scores"].get)
        assert out["score"] == max(out["scores"].values())
        assert list(out["scores"].values()) == sorted(out["scores"].values(), reverse=True)


def test_classifier_top_k(classifier: TextClassificationPredictor) -> None:
    full = classify(classifier, TEXTS, {})
    top1 = classify(classifier, TEXTS, {"top_k": 1})
    top2 = classify(classifier, TEXTS, {"top_k": 2})
    many = classify(classifier, TEXTS, {"top_k": 50})
    for f, one, two, all_ in zip(full, top1, top2, many, strict=True):
        assert one["scores"] == {f["label"]: pytest.approx(f["score"])}
        assert len(two["scores"]) == 2 and two["label"] == f["label"]
        assert len(all_["scores"]) == len(LABELS)
    with pytest.raises(InvalidRequest):
        classify(classifier, TEXTS, {"top_k": 0})


def test_classifier_results_do_not_depend_on_batching(classifier: TextClassificationPredictor) -> None:
    # given the same texts run one per batch and all in one padded batch
    alone = classify(classifier, TEXTS, {}, max_batch_size=1)
    together = classify(classifier, TEXTS, {}, max_batch_size=8)
    # then padding changes nothing and each result stays with its input
    for a, b in zip(alone, together, strict=True):
        assert a["label"] == b["label"]
        for label in LABELS:
            assert a["scores"][label] == pytest.approx(b["scores"][label], abs=1e-5)
    assert len({round(o["score"], 6) for o in alone}) > 1  # the inputs really differ


def test_classifier_labels_come_from_config(classifier: TextClassificationPredictor) -> None:
    assert classifier.labels == LABELS
    assert classifier.max_length({}) == 64


# ------------------------------------------------------------------------------------------- loading, devices


def test_registry_of_predictors() -> None:
    assert PREDICTORS["embedding"] is EmbeddingPredictor
    assert PREDICTORS["text-classification"] is TextClassificationPredictor
    with pytest.raises(InvalidRequest) as e:
        load_predictor("translation", Path("/nowhere"), CPU, {})
    assert e.value.code == "unsupported_task"


def test_pickle_weights_are_never_loaded(tmp_path: Path) -> None:
    # given a folder whose weights are only a pickle file
    folder = make_tiny_text_classifier(tmp_path / "clf", LABELS)
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    # when / then
    with pytest.raises(OSError, match="safetensors"):
        load_predictor("text-classification", folder, CPU, {})


def test_cpu_bf16_units_come_from_the_cpu_flags() -> None:
    assert cpu_flags_have_bf16("processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert cpu_flags_have_bf16("flags : fpu amx_bf16 amx_tile\n")
    # AVX512-BF16 without AMX runs bf16 slower than fp32: auto stays fp32
    assert not cpu_flags_have_bf16("flags : fpu sse avx512f avx512_bf16\n")
    assert not cpu_flags_have_bf16("flags : fpu sse avx2 avx512f avx512bw\n")
    assert not cpu_flags_have_bf16("processor : 0\n")


def test_autocast_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: False)
    assert autocast_dtype(CPU, "auto") is None
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: True)
    assert autocast_dtype(CPU, "auto") is torch.bfloat16
    assert autocast_dtype(CPU, "fp32") is None
    assert autocast_dtype(CPU, "bf16") is torch.bfloat16
    assert autocast_dtype(cuda, "fp16") is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(cuda, "auto") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(cuda, "auto") is torch.float16
    with pytest.raises(InvalidRequest) as e:
        autocast_dtype(CPU, "int8")
    assert e.value.field == "params.precision"


def test_resolve_device_matches_cuda_availability() -> None:
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
