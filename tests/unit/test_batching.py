"""Length-sorted batches under a token budget."""

from __future__ import annotations

import random

import pytest

from inferq.worker.batching import padded_tokens, padding_ratio, plan_batches


def cost(lengths: list[int], batch: list[int]) -> int:
    return len(batch) * max(lengths[i] for i in batch)


def test_batches_are_longest_first_and_within_budget() -> None:
    # given
    lengths = [5, 50, 10, 40, 10, 5]
    # when
    batches = plan_batches(lengths, batch_tokens=100, max_batch_size=8)
    # then: 50+40 fit (2*50), then the 10s and 5s (4*10)
    assert batches == [[1, 3], [2, 4, 0, 5]]


def test_equal_lengths_keep_input_order() -> None:
    assert plan_batches([7, 7, 7, 7, 7], batch_tokens=14, max_batch_size=10) == [[0, 1], [2, 3], [4]]


def test_max_batch_size_caps_short_items() -> None:
    batches = plan_batches([1] * 10, batch_tokens=1000, max_batch_size=4)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_an_item_over_budget_gets_its_own_batch() -> None:
    batches = plan_batches([3, 500, 3], batch_tokens=100, max_batch_size=8)
    assert batches == [[1], [0, 2]]


def test_empty_and_zero_length_inputs() -> None:
    assert plan_batches([], 100, 8) == []
    assert plan_batches([0, 0, 0], 2, 8) == [[0, 1], [2]]


@pytest.mark.parametrize(("tokens", "size"), [(0, 8), (100, 0)])
def test_invalid_budgets_are_refused(tokens: int, size: int) -> None:
    with pytest.raises(ValueError):
        plan_batches([1, 2], tokens, size)


def test_random_plans_hold_every_rule() -> None:
    rng = random.Random(7)
    for _ in range(500):
        # given random lengths and limits
        lengths = [rng.randint(0, 300) for _ in range(rng.randint(0, 200))]
        budget = rng.randint(1, 4000)
        size = rng.randint(1, 64)
        # when
        batches = plan_batches(lengths, budget, size)
        # then every index appears once; limits hold except for single over-budget items
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for batch in batches:
            assert 1 <= len(batch) <= size
            assert len(batch) == 1 or cost(lengths, batch) <= budget
            assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
        # and it is deterministic
        assert plan_batches(list(lengths), budget, size) == batches


def test_padding_ratio() -> None:
    lengths = [4, 2, 2, 1]
    # [4, 2] pads 2 of 8 slots, [2, 1] pads 1 of 4 slots
    assert padding_ratio(lengths, [[0, 1], [2, 3]]) == pytest.approx(3 / 12)
    assert padding_ratio(lengths, [[0], [1], [2], [3]]) == 0.0
    assert padding_ratio([], []) == 0.0
    assert padded_tokens(lengths, [[0, 1], [2, 3]]) == 12
    assert padded_tokens(lengths, [[0], [1], [2], [3]]) == sum(lengths)


def test_job_padding_ratio_sums_the_parts() -> None:
    from inferq.worker.finalizer import batching_metrics

    # given two parts (one bf16 part of 100 tokens in 125 slots, one of 50 in 75) and a part without stats
    parts = [
        {"tokens": 100, "padded_tokens": 125, "batches": 2, "precision": "bf16"},
        {"tokens": 50, "padded_tokens": 75, "batches": 1, "precision": "bf16"},
        None,
    ]
    # then the job's ratio is over all slots, not the mean of the parts' ratios
    metrics = batching_metrics(parts)
    assert metrics == {
        "tokens": 150,
        "padded_tokens": 200,
        "padding_ratio": 0.25,
        "batches": 3,
        "precision": "bf16",
    }
    assert batching_metrics([None, {"batches": 0}]) == {}


def test_part_size_gives_every_worker_work() -> None:
    from pathlib import Path

    from inferq.shared.settings import Settings
    from inferq.worker.planner import part_size

    settings = Settings.from_env({"INFERQ_DATA_DIR": str(Path("/nonexistent-inferq"))})
    assert settings.part_records == 2000
    # a small job with 1 or 2 live workers: two parts each
    assert part_size(2000, settings, workers=1) == 1000
    assert part_size(2000, settings, workers=2) == 500
    # a big job keeps the configured size; a tiny one is never cut below 100 records a part
    assert part_size(1_000_000, settings, workers=2) == 2000
    assert part_size(150, settings, workers=4) == 100
    # without a worker count: 8 parts
    assert part_size(2000, settings) == 250
    assert part_size(None, settings) == 2000
