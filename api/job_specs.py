"""What a `POST /v1/jobs` body may say, checked before anything is created.

Pure: it needs no database. The route then checks what needs one (the model, the input file).
Booleans are never accepted where an integer is expected; `null` for an optional field means absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from inferq.shared.errors import InvalidRequest
from inferq.shared.settings import MAX_RETENTION_DAYS
from inferq.shared.tasks import IMAGE_CLASSIFICATION, PREDICT_TASKS, TEXT_CLASSIFICATION

JOB_TYPES = ("predict", "train", "evaluate")
AVAILABLE_JOB_TYPES = ("predict", "train", "evaluate")

# Set by the server, never by a client.
SERVER_FIELDS = frozenset(
    {
        "id",
        "object",
        "tenant",
        "tenant_id",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "expires_at",
        "updated_at",
        "progress",
        "total",
        "completed",
        "failed",
        "output_file",
        "error_file",
        "result_model",
        "metrics",
        "error",
        "model_version_id",
        "sent_at",
    }
)
PREDICT_FIELDS = frozenset(
    {
        "type",
        "task",
        "model",
        "input_file",
        "params",
        "priority",
        "metadata",
        "webhook_url",
        "completion_window",
        "retention_days",
    }
)
PREDICT_REQUIRED = ("task", "model", "input_file")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OUTPUT_FORMATS = ("jsonl",)
INT_PARAMS = {"batch_tokens": (64, 1_000_000), "max_length": (1, 8192), "top_k": (1, 1000)}
BOOL_PARAMS = ("normalize", "cache", "explain")
PARAMS = (*INT_PARAMS, *BOOL_PARAMS, "output_format", "precision")
# Tasks whose predict jobs can add explanations to each line (worker.explain).
EXPLAIN_TASKS = (TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION)

PRIORITY_RANGE = (0, 9)
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_VALUE_LENGTH = 512
MAX_URL_LENGTH = 2048
MAX_REF_LENGTH = 200
WINDOW_RE = re.compile(r"^(\d{1,7})([smhd])$")
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WINDOW_RANGE = (60, 30 * 86400)


@dataclass(frozen=True)
class PredictSpec:
    task: str
    model: str
    input_file: str
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    completion_window_seconds: int | None = None  # None: the server's default
    retention_days: int | None = None  # None: the server's INFERQ_RETENTION_DAYS; 0: kept until deleted


def _invalid(message: str, name: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, field=name, code=code)


def _string(value: Any, name: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string", name, "invalid_type")
    if not value or len(value) > max_length:
        raise _invalid(f"{name} must be 1 to {max_length} characters", name)
    return value


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be an integer from {low} to {high}", name, "invalid_type")
    if not low <= value <= high:
        raise _invalid(f"{name} must be from {low} to {high}, got {value}", name)
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be one of {', '.join(choices)}", name, "invalid_type")
    if value not in choices:
        raise _invalid(f"{name} must be one of {', '.join(choices)}, got {value!r}", name)
    return value


def check_job_type(body: Any) -> str:
    """The `type` of a job body that is a JSON object; 400 for anything this server cannot run."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    if body.get("type") is None:
        raise _invalid("type is required: predict, train or evaluate", "type", "field_required")
    job_type = _choice(body["type"], "type", JOB_TYPES)
    if job_type not in AVAILABLE_JOB_TYPES:
        raise _invalid(
            f"{job_type} jobs are not available yet on this server; only predict jobs are",
            "type",
            "unsupported_job_type",
        )
    return job_type


def parse_params(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("params must be an object", "params", "invalid_type")
    params: dict[str, Any] = {}
    for key in sorted(value):
        name = f"params.{key}"
        if key not in PARAMS:
            raise _invalid(f"unknown parameter {key!r}; known: {', '.join(PARAMS)}", name, "unknown_field")
        item = value[key]
        if key in INT_PARAMS:
            low, high = INT_PARAMS[key]
            params[key] = _int(item, name, low, high)
        elif key in BOOL_PARAMS:
            if not isinstance(item, bool):
                raise _invalid(f"{name} must be true or false", name, "invalid_type")
            params[key] = item
        elif key == "output_format":
            if item == "parquet":
                raise _invalid(
                    "parquet output is not available yet on this server; use jsonl",
                    name,
                    "unsupported_output_format",
                )
            params[key] = _choice(item, name, OUTPUT_FORMATS)
        else:
            params[key] = _choice(item, name, PRECISIONS)
    return params


def parse_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("metadata must be an object of strings", "metadata", "invalid_type")
    if len(value) > MAX_METADATA_KEYS:
        raise _invalid(f"metadata may have at most {MAX_METADATA_KEYS} keys", "metadata")
    for key, item in value.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY_LENGTH:
            raise _invalid(f"metadata keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters", "metadata")
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_LENGTH:
            raise _invalid(
                f"metadata[{key!r}] must be a string of at most {MAX_METADATA_VALUE_LENGTH} characters",
                "metadata",
                "invalid_type" if not isinstance(item, str) else "invalid_value",
            )
    return dict(value)


def parse_webhook_url(value: Any) -> str | None:
    if value is None:
        return None
    url = _string(value, "webhook_url", MAX_URL_LENGTH)
    parsed = urlparse(url)
    clean = url.isprintable() and not any(ch.isspace() for ch in url)
    if not clean or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _invalid("webhook_url must be an http:// or https:// URL", "webhook_url")
    return url


def parse_completion_window(value: Any) -> int | None:
    """`"24h"`, `"90m"`, `"7d"`, `"3600s"` → seconds (1 minute to 30 days)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(
            'completion_window must be a string such as "24h"', "completion_window", "invalid_type"
        )
    m = WINDOW_RE.match(value.strip())
    if m is None:
        raise _invalid('completion_window must look like "24h", "90m", "7d" or "3600s"', "completion_window")
    seconds = int(m.group(1)) * WINDOW_UNITS[m.group(2)]
    low, high = WINDOW_RANGE
    if not low <= seconds <= high:
        raise _invalid("completion_window must be from 1 minute to 30 days", "completion_window")
    return seconds


def parse_retention_days(value: Any, name: str = "retention_days") -> int | None:
    """Days until the job's (or file's) data is deleted: 0 (kept until deleted) to 36500; null = default."""
    if value is None:
        return None
    return _int(value, name, 0, MAX_RETENTION_DAYS)


def check_fields(body: dict[str, Any], known: frozenset[str], kind: str, required: tuple[str, ...]) -> None:
    """Server-set fields, then unknown fields, then missing required ones: the first failure wins."""
    for key in sorted(body):
        if key in SERVER_FIELDS:
            raise _invalid(f"{key} is set by the server and cannot be given", key, "forbidden_field")
    for key in sorted(body):
        if key not in known:
            raise _invalid(
                f"unknown field {key!r} for a {kind} job; known: {', '.join(sorted(known))}",
                key,
                "unknown_field",
            )
    for key in required:
        if body.get(key) is None:
            raise _invalid(f"{key} is required", key, "field_required")


def check_explain(params: dict[str, Any], kind: str, task: str) -> dict[str, Any]:
    """`params.explain: true` only on predict jobs of a task that can explain (evaluate jobs refuse it:
    their output is scored, not read); `false` is accepted anywhere it is accepted at all."""
    if not params.get("explain"):
        return params
    if kind != "predict":
        raise _invalid(
            f"params.explain applies to predict jobs, not {kind} jobs", "params.explain", "unsupported_param"
        )
    if task not in EXPLAIN_TASKS:
        raise _invalid(
            f"params.explain is available for {' and '.join(EXPLAIN_TASKS)} jobs, not {task}",
            "params.explain",
            "unsupported_param",
        )
    return params


def parse_model_job(
    body: dict[str, Any], kind: str, known: frozenset[str], required: tuple[str, ...], tasks: tuple[str, ...]
) -> PredictSpec:
    """A body that runs a model over an input file (predict, evaluate); the first failure wins."""
    check_fields(body, known, kind, required)
    task = _choice(body["task"], "task", tasks)
    return PredictSpec(
        task=task,
        model=_string(body["model"], "model", MAX_REF_LENGTH),
        input_file=_string(body["input_file"], "input_file", 100),
        params=check_explain(parse_params(body.get("params")), kind, task),
        priority=0 if body.get("priority") is None else _int(body["priority"], "priority", *PRIORITY_RANGE),
        metadata=parse_metadata(body.get("metadata")),
        webhook_url=parse_webhook_url(body.get("webhook_url")),
        completion_window_seconds=parse_completion_window(body.get("completion_window")),
        retention_days=parse_retention_days(body.get("retention_days")),
    )


def parse_predict(body: dict[str, Any]) -> PredictSpec:
    """Every check a predict body can fail without the database, in a fixed order; the first failure wins."""
    return parse_model_job(body, "predict", PREDICT_FIELDS, PREDICT_REQUIRED, PREDICT_TASKS)
