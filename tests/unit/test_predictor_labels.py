"""`worker.predictors.labels`: the label names and top_k labels both classification predictors give."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from inferq.shared.errors import InvalidRequest
from inferq.worker.predictors.labels import model_labels, top_labels


def test_labels_come_in_id_order_whatever_the_order_of_id2label() -> None:
    # given a config whose id2label keys are strings out of order (as config.json has them)
    config = SimpleNamespace(id2label={"10": "k", "2": "c", "0": "a"})
    # then the names come by numeric id
    assert model_labels(Path("m"), config) == ["a", "c", "k"]


def test_a_model_without_labels_is_refused_as_no_classifier() -> None:
    # given a config with no id2label, then the model is refused with the folder named
    with pytest.raises(InvalidRequest, match=r"m/config\.json has no id2label"):
        model_labels(Path("m"), SimpleNamespace(id2label=None))


def test_top_labels_give_the_best_label_and_the_top_k_scores_best_first() -> None:
    # given two rows of scores over three labels
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    # when the top 2 are asked for
    rows = top_labels(scores, ["x", "y", "z"], {"top_k": 2})
    # then each row names its best label, its score, and the two best scores in order
    assert [r["label"] for r in rows] == ["y", "x"]
    assert rows[0]["score"] == pytest.approx(0.7)
    assert list(rows[0]["scores"]) == ["y", "z"]
    assert list(rows[1]["scores"]) == ["x", "z"]


def test_top_labels_default_to_every_label_and_cap_top_k_at_their_number() -> None:
    # given one row over two labels, then without top_k, or with a larger one, both labels are scored
    scores = torch.tensor([[0.4, 0.6]])
    assert list(top_labels(scores, ["a", "b"], {})[0]["scores"]) == ["b", "a"]
    assert list(top_labels(scores, ["a", "b"], {"top_k": 9})[0]["scores"]) == ["b", "a"]
