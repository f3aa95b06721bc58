"""What `train` and `evaluate` job bodies may say, checked before anything is created (no database).

Hyperparameter defaults depend on what is trained (the *family*), and are resolved at submit so the job
shows exactly what it will run:

==============  ======  ==============  ==========  ==========  ======  ============  ============
family          epochs  learning_rate   batch_size  max_length  seed    warmup_ratio  weight_decay
==============  ======  ==============  ==========  ==========  ======  ============  ============
finetune-text   3       5e-5            32          128         42      0.1           0.01
scratch-text    4       5e-3            32          128         42      0.05          0.01
cnn             20      3e-3            64          —           42      0.05          1e-4
finetune-image  3       5e-5            32          —           42      0.1           0.01
==============  ======  ==============  ==========  ==========  ======  ============  ============

`image_size` (8..512) applies to the CNN (default 32: digits are upscaled, small photos kept);
fine-tuned image models use their own processor's size. These train well on a few thousand examples
on a CPU in minutes (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inferq.api.job_specs import (
    MAX_REF_LENGTH,
    PRIORITY_RANGE,
    PredictSpec,
    _choice,
    _int,
    _invalid,
    _string,
    check_fields,
    parse_completion_window,
    parse_metadata,
    parse_model_job,
    parse_retention_days,
    parse_webhook_url,
)
from inferq.shared.tasks import IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION

TRAIN_TASKS = (TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION)
EVALUATE_TASKS = (TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION)

# Architectures defined in the project, trained from random weights (worker/nets).
CNN_ARCHITECTURES = ("cnn-small", "cnn-base")
DEFAULT_BASE = {TEXT_CLASSIFICATION: "minilm-l6", IMAGE_CLASSIFICATION: "cnn-small"}

FINETUNE_TEXT = "finetune-text"
SCRATCH_TEXT = "scratch-text"
CNN = "cnn"
FINETUNE_IMAGE = "finetune-image"

DEFAULTS: dict[str, dict[str, Any]] = {
    FINETUNE_TEXT: {
        "epochs": 3,
        "learning_rate": 5e-5,
        "batch_size": 32,
        "max_length": 128,
        "seed": 42,
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
    },
    SCRATCH_TEXT: {
        "epochs": 4,
        "learning_rate": 5e-3,
        "batch_size": 32,
        "max_length": 128,
        "seed": 42,
        "warmup_ratio": 0.05,
        "weight_decay": 0.01,
    },
    CNN: {
        "epochs": 20,
        "learning_rate": 3e-3,
        "batch_size": 64,
        "image_size": 32,
        "seed": 42,
        "warmup_ratio": 0.05,
        "weight_decay": 1e-4,
    },
    FINETUNE_IMAGE: {
        "epochs": 3,
        "learning_rate": 5e-5,
        "batch_size": 32,
        "seed": 42,
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
    },
}
INT_HYPERPARAMETERS = {
    "epochs": (1, 100),
    "batch_size": (1, 1024),
    "max_length": (8, 4096),
    "seed": (0, 2**31 - 1),
    "image_size": (8, 512),
}
FLOAT_HYPERPARAMETERS = {"learning_rate": (1e-7, 1.0), "warmup_ratio": (0.0, 0.5), "weight_decay": (0.0, 1.0)}
TEXT_ONLY = ("max_length",)
CNN_ONLY = ("image_size",)

COMMON_FIELDS = frozenset(
    {"type", "task", "priority", "metadata", "webhook_url", "completion_window", "retention_days"}
)
TRAIN_FIELDS = COMMON_FIELDS | {
    "base_model",
    "training_file",
    "validation_file",
    "model_name",
    "hyperparameters",
}
TRAIN_REQUIRED = ("task", "training_file", "model_name")
EVALUATE_FIELDS = COMMON_FIELDS | {"model", "input_file", "params"}
EVALUATE_REQUIRED = ("task", "model", "input_file")


@dataclass(frozen=True)
class TrainSpec:
    task: str
    base_model: str | None  # a model reference, a CNN architecture, or None (from scratch)
    training_file: str
    validation_file: str | None
    model_name: str
    hyperparameters: dict[str, Any]  # as given; defaults are filled once the family is known
    priority: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    completion_window_seconds: int | None = None
    retention_days: int | None = None  # None: the server's default; 0: kept until deleted


# An evaluate body has the shape of a predict body: a model over a (labelled) input file.
EvaluateSpec = PredictSpec


def _float(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"{name} must be a number from {low} to {high}", name, "invalid_type")
    if not low <= float(value) <= high:
        raise _invalid(f"{name} must be from {low} to {high}, got {value}", name)
    return float(value)


def parse_hyperparameters(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("hyperparameters must be an object", "hyperparameters", "invalid_type")
    known = (*INT_HYPERPARAMETERS, *FLOAT_HYPERPARAMETERS)
    out: dict[str, Any] = {}
    for key in sorted(value):
        name = f"hyperparameters.{key}"
        if key not in known:
            raise _invalid(
                f"unknown hyperparameter {key!r}; known: {', '.join(sorted(known))}", name, "unknown_field"
            )
        if value[key] is None:
            continue
        if key in INT_HYPERPARAMETERS:
            out[key] = _int(value[key], name, *INT_HYPERPARAMETERS[key])
        else:
            out[key] = _float(value[key], name, *FLOAT_HYPERPARAMETERS[key])
    return out


def resolve_hyperparameters(family: str, given: dict[str, Any]) -> dict[str, Any]:
    """The family's defaults overlaid with what was given; a setting the family cannot use is a 400."""
    defaults = DEFAULTS[family]
    for key in given:
        if key not in defaults:
            raise _invalid(
                f"hyperparameters.{key} does not apply when training {family}",
                f"hyperparameters.{key}",
                "unknown_field",
            )
    return {**defaults, **given}


def parse_train(body: dict[str, Any]) -> TrainSpec:
    check_fields(body, TRAIN_FIELDS, "train", TRAIN_REQUIRED)
    task = _choice(body["task"], "task", TRAIN_TASKS)
    if "base_model" not in body:
        base: str | None = DEFAULT_BASE[task]
    elif body["base_model"] is None:
        base = None
    else:
        base = _string(body["base_model"], "base_model", MAX_REF_LENGTH)
    validation = body.get("validation_file")
    return TrainSpec(
        task=task,
        base_model=base,
        training_file=_string(body["training_file"], "training_file", 100),
        validation_file=None if validation is None else _string(validation, "validation_file", 100),
        model_name=_string(body["model_name"], "model_name", 64),
        hyperparameters=parse_hyperparameters(body.get("hyperparameters")),
        priority=0 if body.get("priority") is None else _int(body["priority"], "priority", *PRIORITY_RANGE),
        metadata=parse_metadata(body.get("metadata")),
        webhook_url=parse_webhook_url(body.get("webhook_url")),
        completion_window_seconds=parse_completion_window(body.get("completion_window")),
        retention_days=parse_retention_days(body.get("retention_days")),
    )


def parse_evaluate(body: dict[str, Any]) -> EvaluateSpec:
    return parse_model_job(body, "evaluate", EVALUATE_FIELDS, EVALUATE_REQUIRED, EVALUATE_TASKS)
