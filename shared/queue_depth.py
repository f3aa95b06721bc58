"""How many messages wait in each queue, read through kombu from whichever broker is configured.

On Redis that is the length of the queue's lists (Celery keeps one list per priority step); on the
embedded filesystem broker, the count of the queue's message files. Both are what the transport's
`queue_declare` reports as `message_count`.
"""

from __future__ import annotations

from inferq.shared.queue import ALL_QUEUES, BrokerError, get_celery
from inferq.shared.settings import Settings

CONNECT_TIMEOUT_SECONDS = 2


def queue_depths(settings: Settings) -> dict[str, int]:
    """Messages waiting per queue (not counting those a worker holds unacknowledged); BrokerError."""
    try:
        with get_celery(settings).connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_SECONDS)
            channel = conn.default_channel
            return {name: int(channel.queue_declare(queue=name).message_count) for name in ALL_QUEUES}
    except Exception as e:  # kombu raises many connection error types
        raise BrokerError(f"broker unreachable: {e}") from e
