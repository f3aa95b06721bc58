"""The TextCNN family (worker/nets/text_cnn.py), the from-scratch text model before the n-gram bag
(worker/nets/ngram_bag.py): its folders still load, resume and predict."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from inferq.worker import nets
from inferq.worker.nets.text_cnn import TextCnnConfig, TextCnnForSequenceClassification

LABELS = {"id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
# What train jobs from scratch built before the n-gram bag: hashed 1-3-grams, no convolutions.
HASHED_BAG = {
    "embedding_size": 64,
    "kernel_sizes": [],
    "ngram_buckets": 100_000,
    "ngram_orders": [1, 2, 3],
    "dropout": 0.3,
}


def model(**config: object) -> TextCnnForSequenceClassification:
    torch.manual_seed(0)
    return TextCnnForSequenceClassification(TextCnnConfig(vocab_size=50, **LABELS, **config)).eval()  # type: ignore[arg-type]


def batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_the_hashed_bag_saves_and_loads_through_the_auto_class(tmp_path: Path) -> None:
    # given the earlier from-scratch model (hashed n-gram bag, no convolutions)
    nets.register()
    trained = model(**HASHED_BAG)
    assert trained.ngrams is not None and len(trained.convs) == 0
    # when it is saved as safetensors and loaded back with AutoModelForSequenceClassification
    trained.save_pretrained(str(tmp_path))
    loaded = AutoModelForSequenceClassification.from_pretrained(str(tmp_path), use_safetensors=True).eval()
    # then it is the same model: same class, same config and the same logits
    assert isinstance(loaded, TextCnnForSequenceClassification)
    assert loaded.config.ngram_orders == [1, 2, 3] and loaded.config.kernel_sizes == []
    with torch.inference_mode():
        assert torch.allclose(trained(**batch()).logits, loaded(**batch()).logits)


def test_padding_does_not_change_a_texts_logits() -> None:
    # given a model with convolutions and n-grams, and one text with and without trailing padding
    net = model(ngram_buckets=1000, embedding_size=16, filters=8)
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0, 0]])
    # when both are scored
    with torch.inference_mode():
        alone = net(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        with_pads = net(input_ids=padded, attention_mask=(padded != 0).long()).logits
    # then the padded n-grams (and padded positions) count for nothing
    assert torch.allclose(alone, with_pads, atol=1e-5)


def test_a_config_without_ngram_keys_loads_as_the_plain_textcnn(tmp_path: Path) -> None:
    # given a folder saved before n-grams existed (its config.json has no ngram_* keys)
    nets.register()
    plain = model()
    plain.save_pretrained(str(tmp_path))
    path = tmp_path / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    assert config.pop("ngram_buckets") == 0 and config.pop("ngram_orders") == [2, 3]
    path.write_text(json.dumps(config), encoding="utf-8")
    # when it is loaded
    loaded = AutoModelForSequenceClassification.from_pretrained(str(tmp_path), use_safetensors=True).eval()
    # then it has no n-gram bag and scores as before
    assert loaded.ngrams is None and len(loaded.convs) == 3
    with torch.inference_mode():
        assert torch.allclose(plain(**batch()).logits, loaded(**batch()).logits)


def test_a_text_shorter_than_every_ngram_order_still_scores() -> None:
    # given a bag of trigrams only, and a one-token text
    net = model(ngram_buckets=100, ngram_orders=[3], kernel_sizes=[], embedding_size=8)
    ids = torch.tensor([[5]])
    # when it is scored
    with torch.inference_mode():
        logits = net(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    # then it gets finite logits for both labels
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
