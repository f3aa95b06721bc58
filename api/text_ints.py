"""The one parser of integers a client writes as text: query parameters, form fields, cursors.

Only ASCII digits are read (surrounding spaces aside): no sign, no underscores, no other script's digits,
all of which `int()` accepts; and never more digits than the largest allowed value has, so a value of
thousands of digits is refused before `int()` spends time on it or meets Python's 4,300-digit limit
(a `ValueError` of its own). Every caller's range starts at 0 or above.
"""

from __future__ import annotations

from inferq.shared.errors import InvalidRequest


def int_from_text(
    text: str,
    name: str,
    low: int,
    high: int,
    *,
    code: str = "invalid_value",
    type_code: str | None = None,
    message: str | None = None,
) -> int:
    """`text` as an integer from `low` (>= 0) to `high`, else a 400 on `name`: `type_code` (default
    `code`) when it is not a whole number, `code` when it is out of range; `message` replaces the default."""
    assert 0 <= low <= high
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidRequest(
            message or f"{name} must be a whole number from {low} to {high}, got {text[:40]!r}",
            field=name,
            code=type_code or code,
        )
    significant = digits.lstrip("0") or "0"
    value = int(significant) if len(significant) <= len(str(high)) else None
    if value is None or not low <= value <= high:
        raise InvalidRequest(
            message or f"{name} must be from {low} to {high}, got {significant[:40]}", field=name, code=code
        )
    return value
