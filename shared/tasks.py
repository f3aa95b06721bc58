"""The task types: which record field each needs and which model kinds can serve it."""

from __future__ import annotations

EMBEDDING = "embedding"
TEXT_CLASSIFICATION = "text-classification"
IMAGE_CLASSIFICATION = "image-classification"

PREDICT_TASKS = (EMBEDDING, TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION)

# The record field each task reads (image tasks also accept `image_key`).
INPUT_FIELD = {EMBEDDING: "text", TEXT_CLASSIFICATION: "text", IMAGE_CLASSIFICATION: "image"}
ALT_INPUT_FIELDS = {IMAGE_CLASSIFICATION: ("image_key",)}


def input_fields(task: str) -> tuple[str, ...]:
    return (INPUT_FIELD[task], *ALT_INPUT_FIELDS.get(task, ()))
