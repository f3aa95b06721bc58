"""Standard Webhooks signatures (https://www.standardwebhooks.com), standard library only.

A secret is `whsec_` + base64 of 32 random bytes; the HMAC key is those bytes. Each delivery carries
`webhook-id` (the same on every retry of one message), `webhook-timestamp` (Unix seconds of the attempt)
and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. Receivers check the
signature over the raw body bytes and refuse timestamps too far from their clock (replays).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(ValueError):
    """The webhook's signature, timestamp or headers do not check out."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as e:
        raise WebhookVerificationError("the webhook secret is not base64 after 'whsec_'") from e


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 signature>` of one delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook; raises `WebhookVerificationError` unless it is authentic and fresh.

    `received` is the request's headers (any case); `body` the raw bytes, before any JSON parsing.
    """
    lowered = {k.lower(): v for k, v in received.items()}
    try:
        msg_id = lowered["webhook-id"]
        raw_ts = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as e:
        raise WebhookVerificationError(f"missing header {e.args[0]}") from e
    try:
        ts = int(raw_ts)
    except ValueError as e:
        raise WebhookVerificationError(f"webhook-timestamp is not an integer: {raw_ts!r}") from e
    if abs((time.time() if now is None else now) - ts) > tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp is too far from now (replayed or clock skew)")
    expected = sign(secret, msg_id, ts, body)
    # The header may list several space-separated signatures (e.g. during a secret rotation).
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split()):
        raise WebhookVerificationError("no signature matches")
