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

from dataclasses import dataclass
from typing import Any

from inferq.api.contract.requests import TrainJobCreate
from inferq.api.job_specs import JobSettings
from inferq.shared.errors import InvalidRequest
from inferq.shared.tasks import IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION

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


@dataclass(frozen=True)
class TrainSpec:
    task: str
    base_model: str | None  # a model reference, a CNN architecture, or None (from scratch)
    training_file: str
    validation_file: str | None
    model_name: str
    hyperparameters: dict[str, Any]  # as given; defaults are filled once the family is known
    settings: JobSettings

    @classmethod
    def of(cls, body: TrainJobCreate) -> TrainSpec:
        """Omitted `base_model`: the task's default; `null`: from scratch."""
        given = body.hyperparameters
        return cls(
            task=body.task,
            base_model=body.base_model if "base_model" in body.model_fields_set else DEFAULT_BASE[body.task],
            training_file=body.training_file,
            validation_file=body.validation_file,
            model_name=body.model_name,
            hyperparameters=given.model_dump(exclude_none=True) if given is not None else {},
            settings=JobSettings.of(body),
        )


def resolve_hyperparameters(family: str, given: dict[str, Any]) -> dict[str, Any]:
    """The family's defaults overlaid with what was given; a setting the family cannot use is a 400."""
    defaults = DEFAULTS[family]
    for key in given:
        if key not in defaults:
            raise InvalidRequest(
                f"hyperparameters.{key} does not apply when training {family}",
                field=f"hyperparameters.{key}",
                code="unknown_field",
            )
    return {**defaults, **given}
