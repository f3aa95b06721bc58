"""Explanations (`params.explain`): token attributions for text, saliency PNGs for images, the API check."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # a lazy alias in transformers 5

from inferq.api.job_specs import parse_evaluate, parse_predict
from inferq.shared.errors import InvalidRequest
from inferq.shared.records import dumps_line
from inferq.worker import explain
from inferq.worker.explain_events import explanation_event
from inferq.worker.images import decode_image
from inferq.worker.inference import run_predictions
from inferq.worker.nets.image_cnn import SmallCnnConfig, SmallCnnForImageClassification
from inferq.worker.nets.text_cnn import TextCnnConfig, TextCnnForSequenceClassification
from inferq.worker.predictors import load_predictor
from inferq.worker.predictors.image_classification import ImageClassificationPredictor
from inferq.worker.predictors.text_classification import TextClassificationPredictor
from tests.helpers.labelled_data import stripe_rows
from tests.helpers.tiny_models import make_tiny_image_classifier, make_tiny_text_classifier

CPU = torch.device("cpu")
LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "this movie was great",
    "bad food",
    "hello",
    "the service was very slow and the price expensive",
    "i loved it !",
]
SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "[MASK]"}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> TextClassificationPredictor:
    folder = make_tiny_text_classifier(tmp_path_factory.mktemp("clf"), LABELS)
    predictor = load_predictor("text-classification", folder, CPU, {})
    assert isinstance(predictor, TextClassificationPredictor)
    return predictor


def classify(
    predictor: Any, values: list[Any], params: dict[str, Any], max_batch_size: int = 8
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    result = run_predictions(predictor, values, params, batch_tokens=256, max_batch_size=max_batch_size)
    return result.outputs, result.stats


# ------------------------------------------------------------------------------------------------ text


def test_each_kept_token_has_one_finite_attribution(classifier: TextClassificationPredictor) -> None:
    # when a batch of texts is predicted with explain
    outputs, stats = classify(classifier, TEXTS, {"explain": True, "precision": "fp32"})
    # then each line explains its own predicted label, one number per word piece, specials dropped
    for text, out in zip(TEXTS, outputs, strict=True):
        explanation = out["explanation"]
        assert explanation["label"] == out["label"]
        assert explanation["method"] == "gradient_x_input"
        pieces = classifier.tokenizer.tokenize(text)
        assert explanation["tokens"] == pieces
        assert len(explanation["attributions"]) == len(pieces)
        assert all(
            isinstance(a, float) and torch.isfinite(torch.tensor(a)) for a in explanation["attributions"]
        )
        assert not SPECIAL & set(explanation["tokens"])
    assert outputs[0]["explanation"]["tokens"] == ["this", "movie", "was", "great"]
    # and the part's stats say what was computed
    assert stats["explained"] == len(TEXTS) and stats["explain_method"] == "gradient_x_input"
    assert stats["explain_seconds"] >= 0


def test_attributions_are_deterministic_and_do_not_depend_on_batching(
    classifier: TextClassificationPredictor,
) -> None:
    # given the same texts explained twice in one padded batch, and once one text per batch
    together, _ = classify(classifier, TEXTS, {"explain": True})
    again, _ = classify(classifier, TEXTS, {"explain": True})
    alone, _ = classify(classifier, TEXTS, {"explain": True}, max_batch_size=1)
    # then the same inputs give the same attributions: padding and neighbours change nothing
    assert [o["explanation"] for o in together] == [o["explanation"] for o in again]
    for a, b in zip(alone, together, strict=True):
        assert a["explanation"]["tokens"] == b["explanation"]["tokens"]
        assert a["explanation"]["attributions"] == pytest.approx(b["explanation"]["attributions"], abs=1e-4)


def test_explain_adds_one_field_and_changes_nothing_else(classifier: TextClassificationPredictor) -> None:
    # given the same texts predicted with and without explain
    plain, plain_stats = classify(classifier, TEXTS, {})
    explained, _ = classify(classifier, TEXTS, {"explain": True})
    # then the lines without explain are byte for byte what they were, and explain only adds its field
    assert all(set(o) == {"label", "score", "scores"} for o in plain)
    assert "explained" not in plain_stats and "explain_seconds" not in plain_stats
    for p, e in zip(plain, explained, strict=True):
        rest = {k: v for k, v in e.items() if k != "explanation"}
        assert dumps_line({"id": "x", **rest}) == dumps_line({"id": "x", **p})


def test_bf16_predictions_are_explained_in_fp32(classifier: TextClassificationPredictor) -> None:
    # when the prediction runs under bf16 autocast
    fp32, _ = classify(classifier, TEXTS, {"explain": True, "precision": "fp32"})
    bf16, stats = classify(classifier, TEXTS, {"explain": True, "precision": "bf16"})
    # then the gradient pass still runs in fp32: the attributions are the fp32 ones
    assert stats["precision"] == "bf16"
    for a, b in zip(fp32, bf16, strict=True):
        if a["label"] == b["label"]:
            assert a["explanation"] == b["explanation"]


def decisive_textcnn(folder: Path, decisive: str) -> TextClassificationPredictor:
    """A TextCNN (kernel 1, no biases) over the tiny vocabulary whose `positive` logit grows with the
    embedding of `decisive`, a word whose embedding is ten times any other's."""
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    vocab = tokenizer.get_vocab()
    config = TextCnnConfig(
        vocab_size=len(vocab),
        embedding_size=8,
        filters=8,
        kernel_sizes=[1],
        dropout=0.0,
        max_position_embeddings=64,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    torch.manual_seed(3)
    model = TextCnnForSequenceClassification(config).eval()
    with torch.no_grad():
        model.embeddings.weight.uniform_(0.0, 0.1)
        model.embeddings.weight[vocab[decisive]] = 1.0
        model.embeddings.weight[tokenizer.pad_token_id] = 0.0
        conv = model.convs[0]
        conv.weight.copy_(torch.eye(8)[:, :, None])
        conv.bias.zero_()
        model.classifier.weight.copy_(torch.stack([-torch.ones(16), torch.ones(16)]))
        model.classifier.bias.zero_()
    model.save_pretrained(folder)
    predictor = load_predictor("text-classification", folder, CPU, {})
    assert isinstance(predictor, TextClassificationPredictor)
    return predictor


def test_the_decisive_token_gets_the_largest_attribution(tmp_path: Path) -> None:
    # given a model that says `positive` because of one word
    folder = make_tiny_text_classifier(tmp_path / "cnn", ["negative", "positive"])
    predictor = decisive_textcnn(folder, "great")
    texts = ["the food was great and fast", "great", "it was a film"]
    # when the texts are explained
    outputs, _ = classify(predictor, texts, {"explain": True})
    # then the decisive word carries the most attribution wherever it appears
    first = outputs[0]["explanation"]
    assert outputs[0]["label"] == "positive" and first["label"] == "positive"
    assert first["tokens"] == ["the", "food", "was", "great", "and", "fast"]
    assert max(range(6), key=lambda i: first["attributions"][i]) == 3
    assert first["attributions"][3] > 5 * max(a for i, a in enumerate(first["attributions"]) if i != 3)
    assert outputs[1]["explanation"]["tokens"] == ["great"]


def test_gradient_x_input_adds_up_to_the_logit_of_a_bias_free_relu_model(tmp_path: Path) -> None:
    # given a piecewise-linear, bias-free model: logit(x) = gradient(x) . x exactly (Euler)
    folder = make_tiny_text_classifier(tmp_path / "cnn", ["negative", "positive"])
    predictor = decisive_textcnn(folder, "good")
    batch = predictor.collate(predictor.preprocess(TEXTS, {}), list(range(len(TEXTS))))
    # when every position's attribution to the `positive` logit is computed in one padded batch
    with torch.enable_grad():
        attributions = explain.token_attributions(predictor.model, batch, [1] * len(TEXTS))
    with torch.inference_mode():
        logits = predictor.model(**batch).logits[:, 1]
    # then each row's attributions (special tokens included) sum to its logit, and padding gets nothing
    mask = batch["attention_mask"].bool()
    assert torch.allclose(attributions.sum(dim=1), logits, rtol=1e-4, atol=1e-5)
    assert torch.all(attributions[~mask] == 0)


def test_the_embedding_layer_is_found_for_bert_and_the_textcnn(
    classifier: TextClassificationPredictor,
) -> None:
    bert = explain.input_embedding_module(classifier.model)
    assert bert is classifier.model.get_input_embeddings()
    cnn = TextCnnForSequenceClassification(TextCnnConfig(vocab_size=50, ngram_buckets=50))
    assert explain.input_embedding_module(cnn) is cnn.embeddings


# ----------------------------------------------------------------------------------------------- images


def decoded(image: dict[str, Any]) -> Image.Image:
    png = Image.open(io.BytesIO(base64.b64decode(image["png_base64"])))
    png.load()
    return png


def small_cnn_folder(folder: Path) -> Path:
    from transformers import ViTImageProcessor  # type: ignore[attr-defined]

    torch.manual_seed(0)
    config = SmallCnnConfig(
        width=4, blocks=2, image_size=8, id2label={0: "h", 1: "v"}, label2id={"h": 0, "v": 1}
    )
    SmallCnnForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 8, "width": 8}).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["cnn", "vit", "resnet"])
def test_images_get_a_saliency_png_of_the_models_input_size(tmp_path: Path, kind: str) -> None:
    # given the project's CNN or a Hugging Face image classifier, and a few striped images
    folder = (
        small_cnn_folder(tmp_path / kind)
        if kind == "cnn"
        else make_tiny_image_classifier(tmp_path / kind, ["h", "v"], kind)
    )
    predictor = load_predictor("image-classification", folder, CPU, {})
    assert isinstance(predictor, ImageClassificationPredictor)
    images = [decode_image(base64.b64decode(r["image"])) for r in stripe_rows(4)]
    # when they are predicted with explain
    outputs, stats = classify(predictor, images, {"explain": True})
    plain, _ = classify(predictor, images, {})
    # then each line has a grayscale PNG of the model's input size, for its predicted label
    side = 8 if kind == "cnn" else 16
    for out, p in zip(outputs, plain, strict=True):
        saliency = out["saliency"]
        assert saliency["label"] == out["label"] and saliency["method"] == "gradient"
        assert (saliency["width"], saliency["height"]) == (side, side)
        png = decoded(saliency)
        assert png.format == "PNG" and png.mode == "L" and png.size == (side, side)
        assert max(png.getdata()) == 255  # scaled to the full range
        assert {k: v for k, v in out.items() if k != "saliency"} == p
    assert stats["explained"] == 4 and stats["explain_method"] == "gradient"
    again, _ = classify(predictor, images, {"explain": True})
    assert [o["saliency"] for o in again] == [o["saliency"] for o in outputs]


def test_saliency_png_is_shrunk_to_at_most_64_a_side() -> None:
    # given a 100x80 map with one bright spot
    saliency = torch.zeros(100, 80)
    saliency[50:60, 40:50] = 3.0
    # when it is encoded
    png_bytes, width, height = explain.saliency_png(saliency)
    png = Image.open(io.BytesIO(png_bytes))
    # then it keeps the aspect ratio within 64x64, and its peak is white
    assert (width, height) == png.size == (51, 64)
    assert max(png.getdata()) == 255 and min(png.getdata()) == 0


def test_an_all_zero_saliency_map_is_black() -> None:
    png_bytes, width, height = explain.saliency_png(torch.zeros(16, 16))
    png = Image.open(io.BytesIO(png_bytes))
    assert (width, height) == (16, 16) and set(png.getdata()) == {0}


# ----------------------------------------------------------------------------------------- API and events


def body(task: str, **params: Any) -> dict[str, Any]:
    return {"type": "predict", "task": task, "model": "m", "input_file": "file_x", "params": params}


@pytest.mark.parametrize("task", ["text-classification", "image-classification"])
def test_explain_is_accepted_for_classification_predict_jobs(task: str) -> None:
    assert parse_predict(body(task, explain=True)).params == {"explain": True}


def test_explain_is_refused_for_embeddings_and_evaluate_jobs() -> None:
    with pytest.raises(InvalidRequest) as e:
        parse_predict(body("embedding", explain=True))
    assert e.value.field == "params.explain" and e.value.code == "unsupported_param"
    evaluate = {**body("text-classification", explain=True), "type": "evaluate"}
    with pytest.raises(InvalidRequest) as e:
        parse_evaluate(evaluate)
    assert e.value.field == "params.explain"
    # explain: false changes nothing anywhere
    assert parse_predict(body("embedding", explain=False)).params == {"explain": False}
    with pytest.raises(InvalidRequest) as e:
        parse_predict(body("text-classification", explain="yes"))
    assert e.value.code == "invalid_type"


def test_the_job_event_sums_the_parts() -> None:
    parts: list[dict[str, Any] | None] = [
        {"explained": 600, "explain_method": "gradient_x_input", "explain_seconds": 1.25},
        None,
        {"batches": 3},
        {"explained": 400, "explain_method": "gradient_x_input", "explain_seconds": 2.0},
    ]
    event = explanation_event(parts)
    assert event is not None
    kind, message, data = event
    assert kind == "explanations"
    assert message == "explanations: gradient x input for 1,000 records in 3.2s"
    assert data == {"records": 1000, "methods": ["gradient_x_input"], "explain_seconds": 3.25}
    assert explanation_event([{"batches": 1}, None]) is None
    json.dumps(data)
