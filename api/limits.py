"""Per-tenant limits: `/v1` requests per minute (429 `rate_limited`) and live jobs (429 `quota_exceeded`).

Both answer 429 in the error shape with `Retry-After` (seconds).

- Rate: a fixed one-minute window per tenant, checked right after the key is (`require_auth` registers
  `check_rate_limit` after `authenticate` on every `/v1` blueprint). With a Redis broker the counters are
  short-lived Redis keys (`inferq:rate:<tenant>:<minute>`, INCR + EXPIRE in one MULTI), shared by every
  API process; with the embedded filesystem broker (one API process) they are counted in memory. When
  Redis does not answer, the process counts in memory for a few seconds instead of refusing or slowing
  every request: the limit protects the service, it is not a dependency of it.
- Quota: the tenant's jobs that are not terminal, counted in SQL inside the submit transaction with the
  tenant's row locked, so that two concurrent submits cannot both take the last slot.

`INFERQ_RATE_LIMIT_PER_MINUTE` and `INFERQ_MAX_LIVE_JOBS_PER_TENANT` set them; 0 turns either off.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import redis
from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inferq.api.context import tenant_id
from inferq.shared.errors import InferqError
from inferq.shared.models import Job, Tenant
from inferq.shared.settings import Settings
from inferq.shared.states import LIVE

log = logging.getLogger(__name__)

EXTENSION = "inferq_rate_limiter"
RATE_KEY_PREFIX = "inferq:rate:"
WINDOW_SECONDS = 60
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_BACKOFF_SECONDS = 5.0
QUOTA_RETRY_AFTER_SECONDS = 10


class TooManyRequests(InferqError):
    """429 with the seconds to wait, sent as `Retry-After` by `api.errors`."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class RateLimited(TooManyRequests):
    code = "rate_limited"


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"


class MemoryCounter:
    """Counts per (tenant, window) in this process; windows that have passed are dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = -1
        self._counts: dict[str, int] = {}

    def incr(self, tenant: str, window: int) -> int:
        with self._lock:
            if window != self._window:
                self._window = window
                self._counts = {}
            count = self._counts.get(tenant, 0) + 1
            self._counts[tenant] = count
            return count


class RateLimiter:
    """A fixed one-minute window of `limit` requests per tenant."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.limit = settings.rate_limit_per_minute
        self._clock = clock
        self._memory = MemoryCounter()
        self._redis: redis.Redis | None = None
        self._redis_down_until = 0.0
        if self.limit > 0 and settings.broker_url.startswith(("redis://", "rediss://")):
            self._redis = redis.Redis.from_url(
                settings.broker_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )

    def _count(self, tenant: str, window: int) -> int:
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            key = f"{RATE_KEY_PREFIX}{tenant}:{window}"
            try:
                pipe = self._redis.pipeline(transaction=True)
                pipe.incr(key)
                pipe.expire(key, 2 * WINDOW_SECONDS)
                count, _ = pipe.execute()
                return int(count)
            except redis.RedisError as e:
                self._redis_down_until = time.monotonic() + REDIS_BACKOFF_SECONDS
                log.warning("rate limit counters unavailable in Redis, counting in memory: %s", e)
        return self._memory.incr(tenant, window)

    def hit(self, tenant: str) -> int | None:
        """Count one request of `tenant`: None when allowed, else the seconds until the window ends."""
        if self.limit <= 0:
            return None
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        if self._count(tenant, window) <= self.limit:
            return None
        return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def install(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = RateLimiter(settings)


def check_rate_limit() -> None:
    """`before_request` after `authenticate`: 429 `rate_limited` past the tenant's requests per minute."""
    limiter = current_app.extensions.get(EXTENSION)
    if not isinstance(limiter, RateLimiter):
        return
    retry_after = limiter.hit(tenant_id())
    if retry_after is not None:
        raise RateLimited(
            f"more than {limiter.limit} requests in a minute from this tenant; retry in {retry_after} s",
            retry_after=retry_after,
        )


def check_live_jobs(session: Session, tenant: str, settings: Settings) -> None:
    """In a submit transaction: 429 `quota_exceeded` when the tenant already has its most live jobs.

    The tenant's row is locked first (Postgres; SQLite has one writer anyway) so that concurrent
    submits of one tenant count one after the other.
    """
    limit = settings.max_live_jobs_per_tenant
    if limit <= 0:
        return
    session.execute(select(Tenant.id).where(Tenant.id == tenant).with_for_update())
    live = session.execute(
        select(func.count()).select_from(Job).where(Job.tenant_id == tenant, Job.status.in_(LIVE))
    ).scalar_one()
    if live >= limit:
        raise QuotaExceeded(
            f"this tenant has {live} jobs that have not finished, the most it may have ({limit}); "
            "wait for one to finish or cancel one",
            retry_after=QUOTA_RETRY_AFTER_SECONDS,
        )
