"""`worker.padding`: the one padded batch that text predictors and text trainables both build."""

from __future__ import annotations

import torch

from inferq.worker.padding import pad_token_ids


def test_rows_are_padded_on_the_right_to_the_longest_with_a_mask_over_their_own_tokens() -> None:
    # given rows of different lengths
    rows = [[5, 6, 7], [8], [9, 10]]
    # when they are padded with id 0
    batch = pad_token_ids(rows, pad_id=0, token_types=False)
    # then every row is as long as the longest, padding on the right, masked out
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["input_ids"].dtype == torch.long
    assert "token_type_ids" not in batch


def test_token_types_are_zeros_shaped_like_the_ids_when_the_model_reads_them() -> None:
    # given a model that reads token types and a pad id other than 0
    batch = pad_token_ids([[3], [4, 5]], pad_id=1, token_types=True)
    # then the padding is that id and the token types are all zero
    assert batch["input_ids"].tolist() == [[3, 1], [4, 5]]
    assert batch["token_type_ids"].tolist() == [[0, 0], [0, 0]]


def test_no_rows_make_an_empty_batch() -> None:
    # given nothing to pad, then the batch is empty rather than an error
    batch = pad_token_ids([], pad_id=0, token_types=False)
    assert batch["input_ids"].shape == (0, 0)
    assert batch["attention_mask"].shape == (0, 0)
