"""Which workers are alive, and on which GPU: short-lived presence records next to the messages.

Each `inferq worker` process renews its record every `RENEW_SECONDS`; one not renewed for `TTL_SECONDS`
is gone. With a Redis broker a record is a key with a TTL (`inferq:worker:<name>`); with the embedded
filesystem broker it is a small file in `<broker dir>/workers/` whose age tells. Like messages they
can be lost without harm: the next renewal writes them again. The API's `/metrics` counts them by GPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "inferq:worker:"
TTL_SECONDS = 60
RENEW_SECONDS = 15
REDIS_TIMEOUT_SECONDS = 2.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@:-]")


@dataclass(frozen=True)
class Presence:
    name: str
    gpu: str  # the CUDA device it is pinned to, or "none"
    host: str
    pid: int
    queues: str


def _is_redis(settings: Settings) -> bool:
    return settings.broker_url.startswith(("redis://", "rediss://"))


def _folder(settings: Settings) -> Path:
    return settings.broker_dir / "workers"


def _file(settings: Settings, name: str) -> Path:
    return _folder(settings) / f"{_UNSAFE.sub('_', name)}.json"


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.broker_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )


def supported(settings: Settings) -> bool:
    return _is_redis(settings) or settings.is_embedded_broker


def announce(settings: Settings, presence: Presence) -> None:
    """Write or renew the record (raises on a broker error: the caller logs and tries again later)."""
    payload = json.dumps(asdict(presence))
    if _is_redis(settings):
        client = _redis(settings)
        try:
            client.set(KEY_PREFIX + presence.name, payload, ex=TTL_SECONDS)
        finally:
            client.close()
    elif settings.is_embedded_broker:
        path = _file(settings, presence.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(payload)
        tmp.replace(path)


def withdraw(settings: Settings, name: str) -> None:
    if _is_redis(settings):
        client = _redis(settings)
        try:
            client.delete(KEY_PREFIX + name)
        finally:
            client.close()
    elif settings.is_embedded_broker:
        _file(settings, name).unlink(missing_ok=True)


def live_workers(settings: Settings) -> list[Presence]:
    """Every worker whose record is fresh."""
    raw: list[str | bytes] = []
    if _is_redis(settings):
        client = _redis(settings)
        try:
            keys = list(client.scan_iter(match=KEY_PREFIX + "*", count=500))
            raw = [v for v in client.mget(keys) if v is not None] if keys else []
        finally:
            client.close()
    elif settings.is_embedded_broker and _folder(settings).is_dir():
        oldest = time.time() - TTL_SECONDS
        for path in _folder(settings).glob("*.json"):
            with contextlib.suppress(OSError):  # withdrawn while we looked
                if path.stat().st_mtime >= oldest:
                    raw.append(path.read_text())
    workers = []
    for item in raw:
        try:
            workers.append(Presence(**json.loads(item)))
        except (ValueError, TypeError) as e:
            log.warning("ignoring a malformed worker record: %s", e)
    return workers


class Announcer(threading.Thread):
    """Renews one worker's record until stopped, then withdraws it."""

    def __init__(self, settings: Settings, presence: Presence) -> None:
        super().__init__(name="inferq-presence", daemon=True)
        self.settings = settings
        self.presence = presence
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            try:
                announce(self.settings, self.presence)
            except Exception as e:  # the broker may be briefly down; try again at the next renewal
                log.warning("could not renew the presence of worker %s: %s", self.presence.name, e)
            if self.done.wait(RENEW_SECONDS):
                return

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)
        try:
            withdraw(self.settings, self.presence.name)
        except Exception as e:  # it expires on its own
            log.warning("could not withdraw the presence of worker %s: %s", self.presence.name, e)
