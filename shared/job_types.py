"""The kinds of job: what a job does with its input, and which queue runs its parts."""

from __future__ import annotations

from inferq.shared.enums import ValueEnum


class JobType(ValueEnum):
    PREDICT = "predict"  # a model's outputs for each record
    TRAIN = "train"  # one leased part on the training queue trains a model (worker.trainer)
    EVALUATE = "evaluate"  # a model's predictions scored against the records' labels
    BATCH = "batch"  # an OpenAI-compatible batch (shared.batch_lines)
