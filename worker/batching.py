"""Length-sorted batches under a token budget (pure: no torch).

Sorting by length puts items of similar length together, so little of each padded batch is padding; the
budget `len(batch) * longest_in_batch <= batch_tokens` bounds the activation memory of every batch.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Indices of `lengths` cut into batches, longest items first.

    Each batch keeps `len(batch) * max_len_in_batch <= batch_tokens` and `len(batch) <= max_batch_size`;
    an item longer than the budget gets a batch of its own. Every index appears exactly once; items of
    equal length keep their input order, so the plan is deterministic.
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {batch_tokens}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        # Sorted longest first: the batch's first item sets its padded length.
        if current and (len(current) >= max_batch_size or (len(current) + 1) * longest > batch_tokens):
            batches.append(current)
            current = []
        if not current:
            longest = max(1, lengths[i])
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Token slots the batches run: batch size x longest item, summed over batches (padding included)."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)


def padding_ratio(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of padded slots (batch size x longest item, summed over batches) that is padding."""
    slots = 0
    used = 0
    for batch in batches:
        if not batch:
            continue
        slots += len(batch) * max(lengths[i] for i in batch)
        used += sum(lengths[i] for i in batch)
    return (slots - used) / slots if slots else 0.0
