"""The SQL schema: the truth about tenants, keys, files, jobs, parts, events and models."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates
from sqlalchemy.types import TypeDecorator

from inferq.shared.enums import ValueEnum
from inferq.shared.job_types import JobType
from inferq.shared.states import JobStatus, PartStatus

E = TypeVar("E", bound=ValueEnum)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both Postgres and SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class EnumString(TypeDecorator[E], Generic[E]):
    """An enum stored as its value in a plain string column (no database enum type, no schema change):
    rows give members, and members or their strings may be written and compared (others are refused)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        try:
            return str(self.enum(value).value)
        except ValueError as e:
            raise ValueError(f"{value!r} is not a {self.enum.__name__}") from e

    def process_result_value(self, value: str | None, dialect: Any) -> E | None:
        return None if value is None else self.enum(value)

    @property
    def python_type(self) -> type[E]:
        return self.enum


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Signs the tenant's webhooks (`whsec_…`, Standard Webhooks); made on first use (shared.webhooks).
    webhook_secret: Mapped[str | None] = mapped_column(String(100), default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class File(Base):
    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(20))
    format: Mapped[str] = mapped_column(String(20))
    bytes: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int | None] = mapped_column(BigInteger)
    # Fields seen in the records (CSV header, JSONL keys): lets job submit refuse a file that can't serve.
    fields: Mapped[list[Any]] = mapped_column(default=list)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)  # the job that produced it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Retention: after this the bytes are deleted from storage and the row goes (worker.retention).
    delete_after: Mapped[datetime | None] = mapped_column(default=None, index=True)

    __table_args__ = (Index("ix_files_tenant_id_id", "tenant_id", "id"),)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    type: Mapped[JobType] = mapped_column(EnumString(JobType))
    task: Mapped[str] = mapped_column(String(40))
    status: Mapped[JobStatus] = mapped_column(EnumString(JobStatus), index=True)
    model: Mapped[str] = mapped_column(String(200))  # the reference resolved at submit: name:version
    model_version_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    input_file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    total: Mapped[int | None] = mapped_column(BigInteger, default=None)
    completed: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    parts_total: Mapped[int | None] = mapped_column(Integer, default=None)
    parts_done: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    error_file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    result_model: Mapped[str | None] = mapped_column(String(200), default=None)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # What the finalizer recorded to rerun the job the same way (worker.manifest): null until finalized.
    reproducibility: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    # When the last control message (plan/finalize) was sent: the reconciler re-sends stale ones.
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A retry child (`POST /v1/jobs/{id}/retry`): its parent and which records it re-runs.
    parent_job_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    retry_of: Mapped[str | None] = mapped_column(String(20), default=None)  # errored|expired|cancelled
    # `"model": "train:<job_id>"`: the predict job stays queued until that training job succeeds.
    waits_for_job_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    # Retention: after this the job's objects (parts, results, manifest) are deleted (worker.retention).
    delete_after: Mapped[datetime | None] = mapped_column(default=None, index=True)

    __table_args__ = (Index("ix_jobs_tenant_id_id", "tenant_id", "id"),)

    @validates("type")
    def _job_type(self, key: str, value: JobType | str) -> JobType:
        return JobType(value)  # a row built with a string holds the member, as a loaded row does

    @validates("status")
    def _job_status(self, key: str, value: JobStatus | str) -> JobStatus:
        return JobStatus(value)


class JobPart(Base):
    __tablename__ = "job_parts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    byte_start: Mapped[int] = mapped_column(BigInteger)
    byte_end: Mapped[int] = mapped_column(BigInteger)
    first_line: Mapped[int] = mapped_column(BigInteger)  # 1-based physical line of the first record
    first_record: Mapped[int] = mapped_column(BigInteger)  # 0-based index of the first record
    records: Mapped[int] = mapped_column(Integer)
    status: Mapped[PartStatus] = mapped_column(EnumString(PartStatus), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # High-water marks of what this part has already added to the job's progress counters.
    reported_completed: Mapped[int] = mapped_column(Integer, default=0)
    reported_failed: Mapped[int] = mapped_column(Integer, default=0)
    output_key: Mapped[str | None] = mapped_column(Text, default=None)
    error_key: Mapped[str | None] = mapped_column(Text, default=None)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # File indexes of this part's records whose id an earlier record of the file has (worker.duplicate_ids):
    # they become `duplicate_id` error lines. Null: none (or planned before duplicates were looked for).
    duplicates: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("job_id", "index", name="uq_job_parts_job_id_index"),
        # Fair share (shared.jobs.fair_share): a job's next fresh part, its running parts, its latest start.
        Index("ix_job_parts_job_id_status_attempts_index", "job_id", "status", "attempts", "index"),
        Index("ix_job_parts_job_id_started_at", "job_id", "started_at"),
    )

    @validates("status")
    def _part_status(self, key: str, value: PartStatus | str) -> PartStatus:
        return PartStatus(value)


class JobEvent(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[JobStatus | None] = mapped_column(EnumString(JobStatus), default=None)
    to_status: Mapped[JobStatus | None] = mapped_column(EnumString(JobStatus), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebhookDelivery(Base):
    """The outbox of a job's webhook: written in the transaction that ends the job, sent after it commits,
    re-sent by the reconciler while `pending`. Its id is the `webhook-id` of every attempt."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(40))  # job.succeeded, job.failed, …
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)  # last message to the broker
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_models_tenant_id_name"),)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    storage_prefix: Mapped[str] = mapped_column(Text)  # folder in storage, Hugging Face layout
    labels: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # pooling, normalize, max_length…
    weights_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    base_model: Mapped[str | None] = mapped_column(String(200), default=None)
    hyperparameters: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_by_job: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ResultCache(Base):
    """Earlier results per tenant (`params.cache: true`): key = sha256 of model version, task params and
    the normalized input; result = the output line without its id, each field as its exact JSON text
    (worker.result_cache)."""

    __tablename__ = "result_cache"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReconcilerState(Base):
    """One row (id 1): when a process last finished a reconciler run (worker.reconcile_timer), and on
    SQLite the run's lock (holder and expiry, taken by compare-and-set; Postgres uses an advisory lock)."""

    __tablename__ = "reconciler_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_run_by: Mapped[str | None] = mapped_column(String(200), default=None)
    holder: Mapped[str | None] = mapped_column(String(200), default=None)
    held_until: Mapped[datetime | None] = mapped_column(default=None)
