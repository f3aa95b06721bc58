"""What a `POST /v1/jobs` body says, once its contract model (`api.contract.requests`) has checked it.

Pure: it needs no database. The route then checks what needs one (the model, the input file).
The body's shape, types and limits live in the contract; this module turns a valid body into the spec
the submit runs, and adds the one rule a schema cannot say (`params.explain` by task and job type).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inferq.api.contract.requests import (
    EvaluateJobCreate,
    JobOptions,
    PredictJobCreate,
    window_seconds,
)
from inferq.api.contract.validate import parse_job_body
from inferq.shared.errors import InvalidRequest
from inferq.shared.job_types import JobType
from inferq.shared.tasks import IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION

# Tasks whose predict jobs can add explanations to each line (worker.explain).
EXPLAIN_TASKS = (TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION)


@dataclass(frozen=True)
class JobSettings:
    """What every job body may add, as the submit uses it."""

    priority: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    completion_window_seconds: int | None = None  # None: the server's default
    retention_days: int | None = None  # None: the server's INFERQ_RETENTION_DAYS; 0: kept until deleted

    @classmethod
    def of(cls, body: JobOptions) -> JobSettings:
        window = body.completion_window
        return cls(
            priority=body.priority or 0,
            metadata=dict(body.metadata or {}),
            webhook_url=body.webhook_url,
            completion_window_seconds=None if window is None else window_seconds(window),
            retention_days=body.retention_days,
        )


@dataclass(frozen=True)
class PredictSpec:
    """A job that runs a model over a file: predict, or evaluate (a labelled file, scored)."""

    type: str
    task: str
    model: str
    input_file: str
    params: dict[str, Any]
    settings: JobSettings


def check_explain(params: dict[str, Any], kind: str, task: str) -> dict[str, Any]:
    """`params.explain: true` only on predict jobs of a task that can explain (evaluate jobs refuse it:
    their output is scored, not read); `false` is accepted anywhere it is accepted at all."""
    if not params.get("explain"):
        return params
    if kind != JobType.PREDICT:
        raise InvalidRequest(
            f"params.explain applies to predict jobs, not {kind} jobs",
            field="params.explain",
            code="unsupported_param",
        )
    if task not in EXPLAIN_TASKS:
        raise InvalidRequest(
            f"params.explain is available for {' and '.join(EXPLAIN_TASKS)} jobs, not {task}",
            field="params.explain",
            code="unsupported_param",
        )
    return params


def model_job_spec(body: PredictJobCreate | EvaluateJobCreate) -> PredictSpec:
    params = body.params.model_dump(exclude_none=True) if body.params is not None else {}
    return PredictSpec(
        type=body.type,
        task=body.task,
        model=body.model,
        input_file=body.input_file,
        params=check_explain(params, body.type, body.task),
        settings=JobSettings.of(body),
    )


def parse_model_job(body: Any, kind: str) -> PredictSpec:
    """A predict or evaluate body (`kind`), every check without the database; the first failure wins."""
    job = parse_job_body(body)
    if not isinstance(job, (PredictJobCreate, EvaluateJobCreate)) or job.type != kind:
        raise InvalidRequest(f"type must be {kind}", field="type", code="invalid_value")
    return model_job_spec(job)


def parse_predict(body: Any) -> PredictSpec:
    return parse_model_job(body, JobType.PREDICT)


def parse_evaluate(body: Any) -> PredictSpec:
    return parse_model_job(body, JobType.EVALUATE)
