"""What the API and the embedder (`inferq serve-embeddings`) say to each other over HTTP (pure: no I/O).

``POST /v1/embed`` with ``{"model": <ResolvedModel fields>, "inputs": [str, …]}`` answers 200
``{"vectors": [[float, …], …], "tokens": [int, …]}`` (one of each per input, in order), or the API's
error shape ``{"error": {"code", "message", "field"}}`` with the status the API should answer.
``GET /healthz`` answers 200 ``{"status": "ok", "runs", "requests"}`` once the embedder takes requests
(model runs so far, and the requests they answered: fewer runs than requests is micro-batching at
work). The model is resolved by the API (tenant and permissions checked there); the embedder only
loads what it is named.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from inferq.shared.registry import ResolvedModel

EMBED_PATH = "/v1/embed"
HEALTH_PATH = "/healthz"
MAX_INPUT_TOKENS = 8192


def model_to_wire(model: ResolvedModel) -> dict[str, Any]:
    return dataclasses.asdict(model)


def model_from_wire(value: Any) -> ResolvedModel:
    """The model named by a request; ValueError if the value is not one."""
    if not isinstance(value, dict):
        raise ValueError("'model' must be an object")
    names = {f.name for f in dataclasses.fields(ResolvedModel)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f"unknown model field {unknown[0]!r}")
    try:
        return ResolvedModel(**value)
    except TypeError as e:
        raise ValueError(f"'model' is incomplete: {e}") from e


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}
