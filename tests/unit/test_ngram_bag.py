"""The from-scratch text model (worker/nets/ngram_bag.py): its n-gram vocabulary, its folders, and the
predict and explain paths it goes through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from inferq.worker import explain, nets
from inferq.worker.inference import run_predictions
from inferq.worker.nets.ngram_bag import (
    NgramBagConfig,
    NgramBagForSequenceClassification,
    learn_ngrams,
    ngram_keys,
)
from inferq.worker.predictors import load_predictor
from inferq.worker.predictors.text_classification import TextClassificationPredictor
from inferq.worker.trainables import SCRATCH_TEXT, SCRATCH_TEXT_ARCHITECTURE, TextTrainable, build_trainable

LABELS = {"id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
TEXTS = ["这部电影非常好看", "质量太差了非常失望", "非常好", "太差了", "好看"]
HP = {"epochs": 1, "learning_rate": 5e-3, "batch_size": 4, "max_length": 32, "seed": 0}


def classify(predictor: TextClassificationPredictor, params: dict[str, Any]) -> list[dict[str, Any]]:
    return run_predictions(predictor, TEXTS, params, batch_tokens=256, max_batch_size=8).outputs


def key(*ids: int, vocab_size: int = 50) -> int:
    out = 0
    for i in ids:
        out = out * (vocab_size + 1) + i + 1
    return out


def bag(vocab: list[list[int]], **config: object) -> NgramBagForSequenceClassification:
    keys = learn_ngrams(vocab, 50, [1, 2, 3], min_count=1)
    torch.manual_seed(0)
    model = NgramBagForSequenceClassification(
        NgramBagConfig(vocab_size=50, ngram_orders=[1, 2, 3], num_ngrams=keys.numel(), **LABELS, **config)  # type: ignore[arg-type]
    )
    model.set_ngram_vocab(keys)
    return model.eval()


def trained_scratch(tmp_path: Path) -> tuple[TextTrainable, Path]:
    """The trainables' from-scratch model over a few Chinese texts (random weights), saved as a folder."""
    torch.manual_seed(0)
    trainable = build_trainable(
        SCRATCH_TEXT, ["neg", "pos"], HP, base=None, architecture="", train_values=TEXTS * 2
    )
    assert isinstance(trainable, TextTrainable)
    folder = tmp_path / "scratch"
    trainable.save(folder)
    return trainable, folder


def test_every_token_and_the_repeated_longer_ngrams_make_the_vocabulary() -> None:
    # given token rows where (5, 6) occurs twice and (7, 8) once
    rows = [[5, 6, 7, 8], [5, 6, 9]]
    # when the vocabulary of 1- and 2-grams seen at least twice is learned
    keys = learn_ngrams(rows, 50, [1, 2], min_count=2)
    # then it holds every token, the repeated bigram only, sorted, with exact (collision-free) keys
    expected = sorted([key(5), key(6), key(7), key(8), key(9), key(5, 6)])
    assert keys.tolist() == expected
    assert learn_ngrams(list(reversed(rows)), 50, [1, 2], min_count=2).tolist() == expected


def test_ngram_keys_stay_inside_the_text() -> None:
    # given a row with two real tokens and padding
    ids = torch.tensor([[5, 6, 0, 0]])
    # when the keys of its 1-, 2- and 3-grams are taken
    keys, valid = ngram_keys(ids, (ids != 0).long(), [1, 2, 3], 50)
    # then only the n-grams made of real tokens are valid
    assert keys.shape == valid.shape == (1, 4, 3)
    assert valid[0].tolist() == [[True, True, False], [True, False, False], [False] * 3, [False] * 3]
    assert keys[0, 0].tolist()[:2] == [key(5), key(5, 6)]


def test_orders_whose_keys_overflow_are_refused() -> None:
    with pytest.raises(ValueError, match="int64"):
        NgramBagConfig(vocab_size=1_000_000, ngram_orders=[1, 2, 3, 4])


def test_padding_and_unknown_ngrams_count_for_nothing() -> None:
    # given a model whose vocabulary comes from one text
    net = bag([[5, 6, 7, 8]])
    ids = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0]])
    with_unknown = torch.tensor([[5, 6, 7, 30]])  # token 30 (and every n-gram with it) was never seen
    # when they are scored
    with torch.inference_mode():
        alone = net(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        with_pads = net(input_ids=padded, attention_mask=(padded != 0).long()).logits
        unknown = net(input_ids=with_unknown, attention_mask=torch.ones_like(with_unknown)).logits
        nothing = net(input_ids=torch.tensor([[30, 31]]), attention_mask=torch.ones(1, 2)).logits
    # then padding and unknown n-grams change nothing, and a text of unknown n-grams gets the bias only
    assert torch.allclose(alone, with_pads, atol=1e-6)
    assert torch.allclose(alone, unknown, atol=1e-6)
    assert torch.allclose(nothing[0], net.classifier.bias)


def test_the_model_saves_and_loads_through_the_auto_class(tmp_path: Path) -> None:
    # given a model with a learned vocabulary
    nets.register()
    net = bag([[5, 6, 7, 8], [9, 10]])
    # when it is saved as safetensors and loaded back with AutoModelForSequenceClassification
    net.save_pretrained(str(tmp_path))
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForSequenceClassification.from_pretrained(
        str(tmp_path), use_safetensors=True, dtype=torch.float32
    ).eval()
    # then it is the same model: class, vocabulary and logits
    assert isinstance(loaded, NgramBagForSequenceClassification)
    assert torch.equal(loaded.ngram_vocab, net.ngram_vocab)
    ids = torch.tensor([[5, 6, 7, 9, 10], [8, 7, 0, 0, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    with torch.inference_mode():
        assert torch.allclose(net(**batch).logits, loaded(**batch).logits)


def test_the_trainables_scratch_model_predicts_through_the_predictor(tmp_path: Path) -> None:
    # given the from-scratch model of a train job, saved (tokenizer with [CLS]/[SEP], n-gram vocabulary)
    trainable, folder = trained_scratch(tmp_path)
    model = trainable.model
    assert isinstance(model, NgramBagForSequenceClassification)
    assert model.config.ngram_orders == SCRATCH_TEXT_ARCHITECTURE["ngram_orders"]
    assert model.config.num_ngrams == model.ngram_vocab.numel() > 0
    # when the folder is loaded by the predict path and scores the texts
    predictor = load_predictor("text-classification", folder, torch.device("cpu"), {})
    assert isinstance(predictor, TextClassificationPredictor)
    outputs = classify(predictor, {"precision": "fp32"})
    # then it gives the trained model's probabilities
    batch = trainable.collate(trainable.encode(TEXTS), list(range(len(TEXTS))), torch.device("cpu"))
    model.eval()
    with torch.inference_mode():
        probs = torch.softmax(model(**batch).logits, dim=-1)
    for out, row in zip(outputs, probs.tolist(), strict=True):
        assert out["scores"]["neg"] == pytest.approx(row[0], abs=1e-5)
        assert out["scores"]["pos"] == pytest.approx(row[1], abs=1e-5)


def test_explanations_split_the_logit_between_the_characters(tmp_path: Path) -> None:
    # given the saved from-scratch model, loaded by the predict path
    _, folder = trained_scratch(tmp_path)
    predictor = load_predictor("text-classification", folder, torch.device("cpu"), {})
    assert isinstance(predictor, TextClassificationPredictor)
    batch = predictor.collate(predictor.preprocess(TEXTS, {}), list(range(len(TEXTS))))
    # when gradient x input is taken for the `pos` logit of every text in one padded batch
    with torch.enable_grad():
        attributions = explain.token_attributions(predictor.model, batch, [1] * len(TEXTS))
    with torch.inference_mode():
        logits = predictor.model(**batch).logits[:, 1]
    # then each row's attributions add up to its logit minus the bias, and padding gets nothing
    bias = float(predictor.model.classifier.bias[1].detach())
    assert torch.allclose(attributions.sum(dim=1), logits - bias, atol=1e-5)
    assert torch.all(attributions[~batch["attention_mask"].bool()] == 0)
    # and the explanations name each character of the text ([CLS] and [SEP] dropped)
    outputs = classify(predictor, {"explain": True, "precision": "fp32"})
    assert outputs[0]["explanation"]["tokens"] == list(TEXTS[0])


def test_a_resumed_job_rebuilds_the_same_model_from_its_checkpoint_folder(tmp_path: Path) -> None:
    # given the from-scratch model of a job, saved after an epoch
    trainable, folder = trained_scratch(tmp_path)
    # when a restarted job builds its trainable from that folder (other texts: nothing is re-learned)
    resumed = build_trainable(
        SCRATCH_TEXT, ["neg", "pos"], HP, base=None, architecture="", train_values=["别的"], resume=folder
    )
    # then it has the same tokenizer, n-gram vocabulary and weights
    assert isinstance(resumed, TextTrainable)
    assert resumed.encode(TEXTS) == trainable.encode(TEXTS)
    before, after = trainable.model.state_dict(), resumed.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
