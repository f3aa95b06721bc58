"""The objects the API answers with, declared once: `/openapi.json` shows these, the light client's
types are generated from them, and tests/unit/test_contract_objects.py checks that each serializer
(`api.serializers`, `shared.job_objects`) writes exactly these fields.

The serializers build plain dicts (a poll of a job is hot and needs no validation); these models are
the contract those dicts keep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from inferq.api.contract.requests import RETRY_ONLY
from inferq.shared.states import JobStatus

if TYPE_CHECKING:
    JobState = str
    RetryOf = str
else:
    JobState = Literal[tuple(s.value for s in JobStatus)]
    RetryOf = Literal[RETRY_ONLY]

JOB_TYPES = ("predict", "train", "evaluate", "batch")  # batch: made by POST /v1/batches
UPLOAD_PURPOSES = ("input", "training", "batch")
PURPOSES = (*UPLOAD_PURPOSES, "output", "errors")
FILE_FORMATS = ("jsonl", "csv", "parquet")
# OpenAI's batch status for each job state.
BATCH_STATUS = {
    JobStatus.QUEUED.value: "validating",
    JobStatus.RUNNING.value: "in_progress",
    JobStatus.FINALIZING.value: "finalizing",
    JobStatus.SUCCEEDED.value: "completed",
    JobStatus.FAILED.value: "failed",
    JobStatus.EXPIRED.value: "expired",
    JobStatus.CANCELLING.value: "cancelling",
    JobStatus.CANCELLED.value: "cancelled",
}

if TYPE_CHECKING:
    JobType = str
    Purpose = str
    FileFormat = str
    BatchStatus = str
else:
    JobType = Literal[JOB_TYPES]
    Purpose = Literal[PURPOSES]
    FileFormat = Literal[FILE_FORMATS]
    BatchStatus = Literal[tuple(BATCH_STATUS.values())]

Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, description="ISO 8601, UTC, ending in Z")
]
UnixTime = Annotated[int, Field(description="Unix seconds")]


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine code, e.g. model_not_found")
    message: str = Field(description="a sentence for a human")
    field: str | None = Field(description="the request field at fault (params.* for job parameters)")


class Error(BaseModel):
    """Every error the API answers: `{"error": {"code", "message", "field"}}`."""

    error: ErrorDetail


class Progress(BaseModel):
    total: int | None = Field(description="null until the job is planned")
    completed: int
    failed: int


class JobError(BaseModel):
    code: str
    message: str | None


class Job(BaseModel):
    id: str = Field(pattern="^job_")
    object: Literal["job"]
    type: JobType
    task: str | None
    status: JobState
    waiting_for: str | None = Field(
        description="the training job a queued job with model train:<job_id> waits for"
    )
    status_reason: str | None = Field(
        description="a sentence saying why the job is in its state (while it waits for training)"
    )
    model: str | None = Field(
        description="the resolved name:version (train:<job_id> while the job waits for it); null: a train "
        "job from scratch"
    )
    input_file: str | None
    params: dict[str, Any]
    priority: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    expires_at: Timestamp | None
    delete_after: Timestamp | None = Field(
        description="when its bytes and row are deleted (retention); null: kept until deleted"
    )
    progress: Progress
    output_file: str | None
    error_file: str | None
    result_model: str | None
    metrics: dict[str, Any] | None
    throughput: Throughput | None = Field(
        description="prediction jobs: while working, rates over the last minute and the ETA; once finished, "
        "the average over the whole run; null for train jobs and before a job starts"
    )
    reproducibility: Manifest | None = Field(
        description="predict, evaluate and batch jobs: null until the job is finalized"
    )
    error: JobError | None
    metadata: dict[str, str]
    webhook_url: str | None
    parent_job: str | None = Field(
        description="a retry child (POST /v1/jobs/{job_id}/retry): the job it reruns records of"
    )
    retry_of: RetryOf | None


class File(BaseModel):
    id: str = Field(pattern="^file_", examples=["file_01hx7w1q3k8m2n4p6r8t0v2x4z"])
    object: Literal["file"]
    filename: str = Field(description="the uploaded name; metadata only")
    bytes: int
    purpose: Purpose
    format: FileFormat
    records: int | None = Field(description="records counted at upload")
    sha256: str = Field(description="hex digest of the bytes")
    created_at: Timestamp
    status: Literal["processed"] = Field(description="OpenAI's file status: stored and scanned")
    delete_after: Timestamp | None = Field(
        description="when its bytes and row are deleted (retention); null: kept until deleted"
    )


class JobEvent(BaseModel):
    id: int
    object: Literal["job.event"]
    created_at: Timestamp
    kind: str = Field(description="state, planned, part_started, part_done, retry, …")
    from_status: str | None
    to_status: str | None
    message: str | None
    data: dict[str, Any]


class ModelVersion(BaseModel):
    id: str = Field(description="name:version")
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
    created_at: Timestamp | None
    weights_sha256: str | None


class Model(BaseModel):
    id: str
    object: Literal["model"]
    name: str
    builtin: bool
    task: str
    latest_version: int | None = Field(description="the version the bare name resolves to")
    versions: list[ModelVersion]
    created_at: Timestamp | None


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True]


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchErrors(BaseModel):
    object: Literal["list"]
    data: list[dict[str, Any]]


class Batch(BaseModel):
    """OpenAI's Batch object; the batch is a job of type batch (job_ + the same suffix)."""

    id: str = Field(pattern="^batch_")
    object: Literal["batch"]
    endpoint: str | None
    model: str | None = Field(description="the model the batch runs, as its requests name it")
    errors: BatchErrors | None
    input_file_id: str | None
    completion_window: str | None
    status: BatchStatus
    output_file_id: str | None
    error_file_id: str | None = Field(description="null when no request failed")
    created_at: UnixTime
    in_progress_at: UnixTime | None
    expires_at: UnixTime | None
    finalizing_at: UnixTime | None
    completed_at: UnixTime | None
    failed_at: UnixTime | None
    expired_at: UnixTime | None
    cancelling_at: UnixTime | None
    cancelled_at: UnixTime | None
    request_counts: BatchRequestCounts
    metadata: dict[str, str]


class Throughput(BaseModel):
    window_seconds: float | None = Field(None, description="the span measured (at most 60 s while working)")
    records_per_second: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    padding_ratio: float | None = Field(
        None, description="padding / padded token slots of the batches measured"
    )
    running_workers: list[str] | None = None


class ManifestModel(BaseModel):
    ref: str = Field(description="name:version")
    name: str
    version: int
    version_id: str | None = Field(description="null for built-ins")
    weights_sha256: str | None
    tokenizer_sha256: str | None = Field(
        description="sha256 over tokenizer.json, vocab.txt, tokenizer_config.json and "
        "special_tokens_map.json (those present: name, newline, sha256 of the bytes); null when the "
        "model has none"
    )


class ManifestRuntime(BaseModel):
    precision: str | None = Field(
        description="fp32, bf16 or fp16 as the parts ran (comma-joined if they differed)"
    )
    device: str | None = Field(description="the device kind: cpu, cuda, mps (comma-joined if they differed)")


class ManifestBatching(BaseModel):
    batch_tokens: int | None = Field(
        description="params.batch_tokens or the server's; null: the device default"
    )
    max_batch_size: int | None = Field(
        description="the server's INFERQ_MAX_BATCH_SIZE; null: the device default"
    )
    max_length: int | None = Field(description="params.max_length; null: the model's")


class ManifestFile(BaseModel):
    id: str | None
    sha256: str | None


class Manifest(BaseModel):
    """What a rerun needs to match: also served as manifest.json by GET /v1/jobs/{job_id}/manifest."""

    object: Literal["job.manifest"]
    job: str = Field(pattern="^job_")
    type: Literal["predict", "evaluate", "batch"]
    task: str
    model: ManifestModel
    runtime: ManifestRuntime
    libraries: dict[str, str | None] = Field(
        description="python, torch, transformers and inferq versions (null: not installed)"
    )
    batching: ManifestBatching
    seed: int | None
    input_file: ManifestFile
    output_file: ManifestFile
    error_file: ManifestFile


class WebhookSecret(BaseModel):
    """Signs the tenant's webhooks, Standard Webhooks style: each POST carries webhook-id,
    webhook-timestamp and webhook-signature = v1,base64(HMAC-SHA256(key, id.timestamp.body)) where key is
    the base64-decoded part of the secret after whsec_."""

    object: Literal["webhook_secret"]
    secret: str = Field(description="whsec_ + base64 of 32 bytes")
    signature_version: Literal["v1"]


# ---- lists ---------------------------------------------------------------------------------------------


class Page(BaseModel):
    """A page of a list (`api.pagination.list_body`): `{"object": "list", "data", "has_more",
    "next_cursor"}`; each list below says what `data` holds."""

    object: Literal["list"]
    has_more: bool
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class FileList(Page):
    data: list[File]


class JobList(Page):
    data: list[Job]


class JobEventList(Page):
    data: list[JobEvent]


class ModelList(Page):
    data: list[Model]


class BatchList(BaseModel):
    """OpenAI's list of batches: `after` (or `cursor`) is the last id of the previous page."""

    object: Literal["list"]
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool
    next_cursor: str | None = Field(description="pass as ?after=; null on the last page")


# ---- answers that are no stored object -----------------------------------------------------------------

DRY_RUN_FIRST_ERRORS = 10  # the dry run lists at most this many of the bad records


class DryRunError(BaseModel):
    id: str | None
    line: int
    error: JobError


class DryRun(BaseModel):
    """`POST /v1/jobs?dry_run=true`: what the job would read and cost; nothing is created."""

    object: Literal["job.dry_run"]
    task: str
    model: str = Field(description="the resolved name:version")
    records: int = Field(description="records in the file (good and bad)")
    bad_records: int = Field(description="scaled from the sample when sampled")
    first_errors: list[DryRunError] = Field(max_length=DRY_RUN_FIRST_ERRORS)
    token_histogram: dict[str, int] = Field(
        description="records per token-length bucket (1-16, 17-32, …, 257+); {} for images"
    )
    tokens: int = Field(description="tokens the model would see (truncated)")
    estimated_seconds: float = Field(description="compute seconds (one worker)")
    throughput: dict[str, Any] = Field(
        description="the rate assumed: measured on the tenant's earlier parts, else a default"
    )
    sampled: bool = Field(description="true: only the file's first MBs were read")
    sampled_bytes: int | None


class ReadinessCheck(BaseModel):
    """`{ok, ms}` when the dependency answered, `{ok: false, error}` when it did not."""

    ok: bool
    ms: float | None = None
    error: str | None = None


class ReconcilerStatus(BaseModel):
    """When a worker last ran the reconciler (`shared.reconciler_state.describe`)."""

    last_run_at: Annotated[str, Field(json_schema_extra={"format": "date-time"})] | None
    last_run_by: str | None
    age_seconds: float | None
    interval_seconds: int
    overdue: bool = Field(description="no run for 3 intervals (or ever)")
    warning: str | None


class Readiness(BaseModel):
    """`GET /readyz`: 200 ready, or 503 unavailable naming what is unreachable."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, ReadinessCheck] = Field(description="database, broker, storage")
    reconciler: ReconcilerStatus | None = Field(
        description="when a worker last ran the reconciler; null when the database is down"
    )
    error: ErrorDetail | None = Field(None, description="when unavailable: not_ready, naming what failed")


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of the little-endian float32 bytes")


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class Embeddings(BaseModel):
    """OpenAI's embeddings response (`shared.openai_embeddings.response_body`): one per input, in order."""

    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage
