"""The HTTP contract's types for the client, generated from the server's contract models
(`inferq.api.contract`) by `python -m inferq.api.contract.codegen`. Do not edit: regenerate.

Request bodies and the objects the API answers with, as `TypedDict`s: no pydantic needed.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Batch(TypedDict):
    """OpenAI's Batch object; the batch is a job of type batch (job_ + the same suffix)."""

    id: str
    object: Literal["batch"]
    endpoint: str | None
    model: str | None
    errors: BatchErrors | None
    input_file_id: str | None
    completion_window: str | None
    status: Literal[
        "validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"
    ]
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: BatchRequestCounts
    metadata: dict[str, str]


class _BatchCreateRequired(TypedDict):
    input_file_id: str
    endpoint: Literal["/v1/embeddings"]
    completion_window: Literal["24h"]


class BatchCreate(_BatchCreateRequired, total=False):
    """OpenAI's batch create body."""

    metadata: dict[str, str] | None


class BatchErrors(TypedDict):
    object: Literal["list"]
    data: list[dict[str, Any]]


class BatchList(TypedDict):
    """OpenAI's list of batches: `after` (or `cursor`) is the last id of the previous page."""

    object: Literal["list"]
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool
    next_cursor: str | None


class BatchRequestCounts(TypedDict):
    total: int
    completed: int
    failed: int


class Deleted(TypedDict):
    id: str
    object: str
    deleted: Literal[True]


class DryRun(TypedDict):
    """`POST /v1/jobs?dry_run=true`: what the job would read and cost; nothing is created."""

    object: Literal["job.dry_run"]
    task: str
    model: str
    records: int
    bad_records: int
    first_errors: list[DryRunError]
    token_histogram: dict[str, int]
    tokens: int
    estimated_seconds: float
    throughput: dict[str, Any]
    sampled: bool
    sampled_bytes: int | None


class DryRunError(TypedDict):
    id: str | None
    line: int
    error: JobError


class Embedding(TypedDict):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class Embeddings(TypedDict):
    """OpenAI's embeddings response (`shared.openai_embeddings.response_body`): one per input, in order."""

    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage


class _EmbeddingsCreateRequired(TypedDict):
    model: str
    input: str | list[str]


class EmbeddingsCreate(_EmbeddingsCreateRequired, total=False):
    """OpenAI's embeddings request (`shared.openai_embeddings.EmbeddingsBody`, which the endpoint and the
    lines of a batch validate with), with the endpoint's limit: at most `MAX_EMBEDDING_INPUTS` texts (more
    is 413 too_many_inputs; for more, a job or a batch)."""

    encoding_format: Literal["float", "base64"] | None
    dimensions: int | None
    user: str | None


class EmbeddingsUsage(TypedDict):
    prompt_tokens: int
    total_tokens: int


class Error(TypedDict):
    """Every error the API answers: `{"error": {"code", "message", "field"}}`."""

    error: ErrorDetail


class ErrorDetail(TypedDict):
    code: str
    message: str
    field: str | None


class _EvaluateJobCreateRequired(TypedDict):
    type: Literal["evaluate"]
    task: Literal["text-classification", "image-classification"]
    model: str
    input_file: str


class EvaluateJobCreate(_EvaluateJobCreateRequired, total=False):
    """Scores a classifier on a labelled file (purpose training or input, with a `label` field)."""

    priority: int | None
    metadata: dict[str, str] | None
    webhook_url: str | None
    completion_window: str | None
    retention_days: int | None
    params: PredictParams | None


class File(TypedDict):
    id: str
    object: Literal["file"]
    filename: str
    bytes: int
    purpose: Literal["input", "training", "batch", "output", "errors"]
    format: Literal["jsonl", "csv", "parquet"]
    records: int | None
    sha256: str
    created_at: str
    status: Literal["processed"]
    delete_after: str | None


class FileList(TypedDict):
    object: Literal["list"]
    has_more: bool
    next_cursor: str | None
    data: list[File]


class Hyperparameters(TypedDict, total=False):
    """Omitted (or null): the family's default (see `api.train_specs`); a setting the family cannot use
    is 400 unknown_field once the base model is known."""

    epochs: int | None
    learning_rate: float | None
    batch_size: int | None
    max_length: int | None
    seed: int | None
    warmup_ratio: float | None
    weight_decay: float | None
    image_size: int | None


class Job(TypedDict):
    id: str
    object: Literal["job"]
    type: Literal["predict", "train", "evaluate", "batch"]
    task: str | None
    status: Literal[
        "queued", "running", "finalizing", "succeeded", "failed", "cancelling", "cancelled", "expired"
    ]
    waiting_for: str | None
    status_reason: str | None
    model: str | None
    input_file: str | None
    params: dict[str, Any]
    priority: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    expires_at: str | None
    delete_after: str | None
    progress: Progress
    output_file: str | None
    error_file: str | None
    result_model: str | None
    metrics: dict[str, Any] | None
    throughput: Throughput | None
    reproducibility: Manifest | None
    error: JobError | None
    metadata: dict[str, str]
    webhook_url: str | None
    parent_job: str | None
    retry_of: Literal["errored", "expired", "cancelled"] | None


class JobError(TypedDict):
    code: str
    message: str | None


class JobEvent(TypedDict):
    id: int
    object: Literal["job.event"]
    created_at: str
    kind: str
    from_status: str | None
    to_status: str | None
    message: str | None
    data: dict[str, Any]


class JobEventList(TypedDict):
    object: Literal["list"]
    has_more: bool
    next_cursor: str | None
    data: list[JobEvent]


class JobList(TypedDict):
    object: Literal["list"]
    has_more: bool
    next_cursor: str | None
    data: list[Job]


class Manifest(TypedDict):
    """What a rerun needs to match: also served as manifest.json by GET /v1/jobs/{job_id}/manifest."""

    object: Literal["job.manifest"]
    job: str
    type: Literal["predict", "evaluate", "batch"]
    task: str
    model: ManifestModel
    runtime: ManifestRuntime
    libraries: dict[str, str | None]
    batching: ManifestBatching
    seed: int | None
    input_file: ManifestFile
    output_file: ManifestFile
    error_file: ManifestFile


class ManifestBatching(TypedDict):
    batch_tokens: int | None
    max_batch_size: int | None
    max_length: int | None


class ManifestFile(TypedDict):
    id: str | None
    sha256: str | None


class ManifestModel(TypedDict):
    ref: str
    name: str
    version: int
    version_id: str | None
    weights_sha256: str | None
    tokenizer_sha256: str | None


class ManifestRuntime(TypedDict):
    precision: str | None
    device: str | None


class Model(TypedDict):
    id: str
    object: Literal["model"]
    name: str
    builtin: bool
    task: str
    latest_version: int | None
    versions: list[ModelVersion]
    created_at: str | None


class ModelList(TypedDict):
    object: Literal["list"]
    has_more: bool
    next_cursor: str | None
    data: list[Model]


class ModelVersion(TypedDict):
    id: str
    object: Literal["model.version"]
    name: str
    version: int
    task: str
    status: str
    labels: list[str] | None
    metrics: dict[str, Any] | None
    config: dict[str, Any]
    base_model: str | None
    hyperparameters: dict[str, Any] | None
    created_by_job: str | None
    created_at: str | None
    weights_sha256: str | None


class _PredictJobCreateRequired(TypedDict):
    type: Literal["predict"]
    task: Literal["embedding", "text-classification", "image-classification"]
    model: str
    input_file: str


class PredictJobCreate(_PredictJobCreateRequired, total=False):
    """Runs a model over a file of purpose input."""

    priority: int | None
    metadata: dict[str, str] | None
    webhook_url: str | None
    completion_window: str | None
    retention_days: int | None
    params: PredictParams | None


class PredictParams(TypedDict, total=False):
    """Omitted parameters follow the model's own settings."""

    batch_tokens: int | None
    max_length: int | None
    normalize: bool | None
    top_k: int | None
    output_format: Literal["jsonl"] | None
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None
    cache: bool | None
    explain: bool | None


class Progress(TypedDict):
    total: int | None
    completed: int
    failed: int


class _ReadinessRequired(TypedDict):
    status: Literal["ready", "unavailable"]
    checks: dict[str, ReadinessCheck]
    reconciler: ReconcilerStatus | None


class Readiness(_ReadinessRequired, total=False):
    """`GET /readyz`: 200 ready, or 503 unavailable naming what is unreachable."""

    error: ErrorDetail | None


class _ReadinessCheckRequired(TypedDict):
    ok: bool


class ReadinessCheck(_ReadinessCheckRequired, total=False):
    """`{ok, ms}` when the dependency answered, `{ok: false, error}` when it did not."""

    ms: float | None
    error: str | None


class ReconcilerStatus(TypedDict):
    """When a worker last ran the reconciler (`shared.reconciler_state.describe`)."""

    last_run_at: str | None
    last_run_by: str | None
    age_seconds: float | None
    interval_seconds: int
    overdue: bool
    warning: str | None


class _RetryCreateRequired(TypedDict):
    only: Literal["errored", "expired", "cancelled"]


class RetryCreate(_RetryCreateRequired, total=False):
    completion_window: str | None


class Throughput(TypedDict, total=False):
    window_seconds: float | None
    records_per_second: float | None
    tokens_per_second: float | None
    eta_seconds: float | None
    padding_ratio: float | None
    running_workers: list[str] | None


class _TrainJobCreateRequired(TypedDict):
    type: Literal["train"]
    task: Literal["text-classification", "image-classification"]
    training_file: str
    model_name: str


class TrainJobCreate(_TrainJobCreateRequired, total=False):
    """Trains a classifier and registers it as `model_name`."""

    priority: int | None
    metadata: dict[str, str] | None
    webhook_url: str | None
    completion_window: str | None
    retention_days: int | None
    base_model: str | None
    validation_file: str | None
    hyperparameters: Hyperparameters | None


class WebhookSecret(TypedDict):
    """Signs the tenant's webhooks, Standard Webhooks style: each POST carries webhook-id,
    webhook-timestamp and webhook-signature = v1,base64(HMAC-SHA256(key, id.timestamp.body)) where key is
    the base64-decoded part of the secret after whsec_."""

    object: Literal["webhook_secret"]
    secret: str
    signature_version: Literal["v1"]


JobCreate = PredictJobCreate | TrainJobCreate | EvaluateJobCreate
