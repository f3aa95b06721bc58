"""Opaque, prefixed, time-sortable ids (ULID layout in lowercase Crockford base32)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`file_01hx…`: 48 bits of milliseconds then 80 random bits, so ids sort by creation time."""
    millis = int(time.time() * 1000)
    return f"{prefix}_{_b32(millis, 10)}{_b32(secrets.randbits(80), 16)}"


def new_api_key() -> str:
    return "iq_" + secrets.token_urlsafe(32)
