"""The one settings object, read from the environment once (on first use, never at import)."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


# Retention in days: 0 keeps data until it is deleted; the cap keeps dates far from datetime's limits.
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 36500
KEEP_FOREVER = ("0", "none", "never")
S3_SSE_MODES = ("AES256", "aws:kms")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from e
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _retention_days(env: Mapping[str, str]) -> int:
    """INFERQ_RETENTION_DAYS: whole days (1..36500); `0` or `none` keeps data until it is deleted."""
    name = "INFERQ_RETENTION_DAYS"
    raw = (env.get(name) or "").strip()
    if raw.lower() in KEEP_FOREVER:
        return 0
    if raw == "":
        return DEFAULT_RETENTION_DAYS
    value = _int({name: raw}, name, DEFAULT_RETENTION_DAYS, 0)
    if value > MAX_RETENTION_DAYS:
        raise SettingsError(
            f"{name} must be at most {MAX_RETENTION_DAYS} days (or 0/none: keep), got {value}"
        )
    return value


def _s3_sse(env: Mapping[str, str]) -> str | None:
    """INFERQ_S3_SSE: `AES256` or `aws:kms` (server-side encryption of every object written); unset = off."""
    raw = (env.get("INFERQ_S3_SSE") or "").strip()
    if raw == "" or raw.lower() in ("none", "off"):
        return None
    for mode in S3_SSE_MODES:
        if raw.lower() == mode.lower():
            return mode
    raise SettingsError(f"INFERQ_S3_SSE must be one of {', '.join(S3_SSE_MODES)} (or unset), got {raw!r}")


def _flag(env: Mapping[str, str], name: str) -> bool:
    return (env.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _http_url(env: Mapping[str, str], name: str, default: str) -> str:
    """An http(s)://host:port base URL, without a trailing slash."""
    raw = (env.get(name) or "").strip() or default
    if not re.fullmatch(r"https?://[^/\s:]+(:\d{1,5})?/?", raw):
        raise SettingsError(f"{name} must be http://host:port, got {raw!r}")
    return raw.rstrip("/")


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """CIDRs separated by commas or spaces (``127.0.0.1/32, 10.20.0.0/16``); unset = none."""
    raw = env.get(name) or ""
    try:
        return tuple(ipaddress.ip_network(part, strict=False) for part in re.split(r"[\s,]+", raw) if part)
    except ValueError as e:
        raise SettingsError(f"{name} must be CIDR networks separated by commas: {e}") from e


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    storage_url: str
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # Limits
    max_upload_bytes: int = 2 * GIB
    max_records_per_file: int = 10_000_000
    # The most pixels (width x height) of one image a worker decodes: 4096x4096, 64 MiB as RGBA, held
    # one image at a time while it is shrunk to the model's input size (worker.images)
    image_max_pixels: int = 4096 * 4096
    # Per tenant: /v1 requests per minute and jobs not yet finished (0 = no limit)
    rate_limit_per_minute: int = 6000
    max_live_jobs_per_tenant: int = 100
    # Seconds an API process reuses a key's tenant without asking the database (0 = ask every time):
    # a revoked key stops working in every API process at most this long after the revocation.
    auth_cache_seconds: int = 2
    part_records: int = 2000
    # Batching (0 = the worker's default for its device: see worker.inference.batching_for)
    batch_tokens: int = 0
    max_batch_size: int = 0
    # Leases and time limits (seconds)
    lease_seconds: int = 120
    heartbeat_seconds: int = 5
    task_time_limit: int = 3000
    visibility_timeout: int = 3600
    resend_after_seconds: int = 600
    max_part_attempts: int = 3
    # A run_part message runs the fairest waiting part (tenants in turn, priority within one), not
    # necessarily the one it names (shared.jobs.claim_fair_part); off: exactly the part it names.
    fair_share: bool = True
    # Every worker runs the reconciler this often, one at a time (INFERQ_RECONCILE_INTERVAL_SECONDS;
    # INFERQ_RECONCILE_INTERVAL is the older name): a dead worker's part runs again within lease + this.
    reconcile_interval_seconds: int = 30
    default_completion_window_seconds: int = 24 * 3600
    # Where workers cache model folders fetched from storage
    model_cache_dir: Path = field(default_factory=lambda: Path(".inferq/models"))
    model_cache_size: int = 4
    # Threads for torch in a worker process (0 = torch's default)
    torch_threads: int = 0
    # The embedder (`inferq serve-embeddings`, worker/embedder_server.py) that answers POST /v1/embeddings
    # for the API, and how long the API waits for its answer before a 503 (connecting included).
    embeddings_url: str = "http://127.0.0.1:8001"
    embeddings_timeout_seconds: int = 30
    log_json: bool = False
    # Webhooks: attempts per delivery, first retry delay (doubling, capped at an hour), total seconds of
    # one attempt (DNS, connect, TLS, request and the whole answer), delivery threads per worker process;
    # plain http and internal receivers (CIDRs, e.g. 10.20.0.0/16) only when the operator allows them.
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: int = 10
    webhook_timeout_seconds: int = 10
    webhook_threads: int = 4
    webhook_allow_http: bool = False
    webhook_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # A worker's Prometheus endpoint: port + its index (0 = none); see worker/metrics_server.py
    worker_metrics_port: int = 0
    worker_index: int = 0
    # Privacy: files and jobs are deleted this many days after they are made (0 = kept until deleted);
    # S3 server-side encryption of every object written (AES256 | aws:kms, None = off) and its KMS key.
    retention_days: int = DEFAULT_RETENTION_DAYS
    s3_sse: str | None = None
    s3_sse_kms_key_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("INFERQ_DATA_DIR") or ".inferq").resolve()
        database_url = env.get("INFERQ_DATABASE_URL") or f"sqlite:///{data_dir / 'inferq.db'}"
        broker_url = env.get("INFERQ_BROKER_URL") or "filesystem://"
        storage_url = env.get("INFERQ_STORAGE_URL") or f"file://{data_dir / 'storage'}"
        settings = cls(
            data_dir=data_dir,
            database_url=normalize_database_url(database_url),
            broker_url=broker_url,
            storage_url=storage_url,
            s3_endpoint_url=env.get("INFERQ_S3_ENDPOINT_URL") or None,
            s3_region=env.get("INFERQ_S3_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            max_upload_bytes=_int(env, "INFERQ_MAX_UPLOAD_BYTES", 2 * GIB, 1),
            max_records_per_file=_int(env, "INFERQ_MAX_RECORDS_PER_FILE", 10_000_000, 1),
            image_max_pixels=_int(env, "INFERQ_IMAGE_MAX_PIXELS", 4096 * 4096, 1),
            rate_limit_per_minute=_int(env, "INFERQ_RATE_LIMIT_PER_MINUTE", 6000, 0),
            max_live_jobs_per_tenant=_int(env, "INFERQ_MAX_LIVE_JOBS_PER_TENANT", 100, 0),
            auth_cache_seconds=_int(env, "INFERQ_AUTH_CACHE_SECONDS", 2, 0),
            part_records=_int(env, "INFERQ_PART_RECORDS", 2000, 1),
            batch_tokens=_int(env, "INFERQ_BATCH_TOKENS", 0, 64),
            max_batch_size=_int(env, "INFERQ_MAX_BATCH_SIZE", 0, 1),
            lease_seconds=_int(env, "INFERQ_LEASE_SECONDS", 120, 5),
            heartbeat_seconds=_int(env, "INFERQ_HEARTBEAT_SECONDS", 5, 1),
            task_time_limit=_int(env, "INFERQ_TASK_TIME_LIMIT", 3000, 10),
            visibility_timeout=_int(env, "INFERQ_VISIBILITY_TIMEOUT", 3600, 10),
            resend_after_seconds=_int(env, "INFERQ_RESEND_AFTER_SECONDS", 600, 1),
            max_part_attempts=_int(env, "INFERQ_MAX_PART_ATTEMPTS", 3, 1),
            fair_share=(env.get("INFERQ_FAIR_SHARE") or "").lower() not in ("0", "false", "no", "off"),
            reconcile_interval_seconds=_int(
                env, "INFERQ_RECONCILE_INTERVAL_SECONDS", _int(env, "INFERQ_RECONCILE_INTERVAL", 30, 1), 1
            ),
            default_completion_window_seconds=_int(env, "INFERQ_COMPLETION_WINDOW", 24 * 3600, 60),
            model_cache_dir=Path(env.get("INFERQ_MODEL_CACHE_DIR") or data_dir / "models").resolve(),
            model_cache_size=_int(env, "INFERQ_MODEL_CACHE_SIZE", 4, 1),
            torch_threads=_int(env, "INFERQ_TORCH_THREADS", 0, 0),
            embeddings_url=_http_url(env, "INFERQ_EMBEDDINGS_URL", "http://127.0.0.1:8001"),
            embeddings_timeout_seconds=_int(env, "INFERQ_EMBEDDINGS_TIMEOUT_SECONDS", 30, 1),
            log_json=(env.get("INFERQ_LOG_JSON", "") or "").lower() in ("1", "true", "yes"),
            webhook_max_attempts=_int(env, "INFERQ_WEBHOOK_MAX_ATTEMPTS", 8, 1),
            webhook_backoff_seconds=_int(env, "INFERQ_WEBHOOK_BACKOFF_SECONDS", 10, 1),
            webhook_timeout_seconds=_int(
                env,
                "INFERQ_WEBHOOK_TIMEOUT_SECONDS",
                _int(env, "INFERQ_WEBHOOK_TIMEOUT", 10, 1),  # the earlier name
                1,
            ),
            webhook_threads=_int(env, "INFERQ_WEBHOOK_THREADS", 4, 1),
            webhook_allow_http=_flag(env, "INFERQ_WEBHOOK_ALLOW_HTTP"),
            webhook_allowed_networks=_networks(env, "INFERQ_WEBHOOK_ALLOWED_NETWORKS"),
            worker_metrics_port=_int(env, "INFERQ_WORKER_METRICS_PORT", 0, 0),
            worker_index=_int(env, "INFERQ_WORKER_INDEX", 0, 0),
            retention_days=_retention_days(env),
            s3_sse=_s3_sse(env),
            s3_sse_kms_key_id=(env.get("INFERQ_S3_SSE_KMS_KEY_ID") or "").strip() or None,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that would lose or double work."""
        if self.heartbeat_seconds * 2 >= self.lease_seconds:
            raise SettingsError("INFERQ_HEARTBEAT_SECONDS must be less than half of INFERQ_LEASE_SECONDS")
        if self.task_time_limit >= self.visibility_timeout:
            raise SettingsError(
                "INFERQ_TASK_TIME_LIMIT must be below INFERQ_VISIBILITY_TIMEOUT, otherwise the broker "
                "redelivers a task that is still running"
            )
        if self.s3_sse is not None and not self.storage_url.startswith("s3://"):
            raise SettingsError("INFERQ_S3_SSE applies to s3:// storage; INFERQ_STORAGE_URL is not s3://")
        if self.s3_sse_kms_key_id is not None and self.s3_sse != "aws:kms":
            raise SettingsError("INFERQ_S3_SSE_KMS_KEY_ID needs INFERQ_S3_SSE=aws:kms")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for Postgres URLs given in the usual forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def reset_settings_cache() -> None:
    """For tests and the CLI after it changes the environment."""
    get_settings.cache_clear()
