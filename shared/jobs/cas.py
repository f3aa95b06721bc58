"""Compare-and-set: an UPDATE whose WHERE names the state the caller saw applies to one row, or none."""

from __future__ import annotations

from sqlalchemy.engine import Result


def applied(result: Result[object]) -> bool:
    """Whether the compare-and-set UPDATE (or DELETE) found its one row still as the caller saw it."""
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
