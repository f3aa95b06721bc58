"""Lists: `?limit=` (1..1000, default 100) and an opaque `?cursor=`, the id of the last item served.

Ids are time-sortable, so "newest first" is `ORDER BY id DESC` and the next page is `id < cursor`.
Every list answers `{"data": [...], "has_more": bool, "next_cursor": str | null}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import request
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from inferq.api.text_ints import int_from_text
from inferq.shared.errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CURSOR_RE = re.compile(r"^[0-9A-Za-z_-]{1,100}$")
BIGINT_MAX = 2**63 - 1  # the largest integer id the database stores

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    next_cursor: str | None


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """A list's `?limit=`: `default` when absent or empty, else 1 to `maximum`, or a 400 on `limit`."""
    if raw is None or raw == "":
        return default
    return int_from_text(raw, "limit", 1, maximum, message=f"limit must be an integer from 1 to {maximum}")


def int_cursor(raw: str) -> int:
    """The cursor of a list ordered by an integer id (`cursor_value=int_cursor`)."""
    return int_from_text(
        raw, "cursor", 0, BIGINT_MAX, code="invalid_cursor", message="cursor is not one this API gave out"
    )


def page_request() -> PageRequest:
    """`limit` and `cursor` from the query string, or a 400 naming the bad one."""
    limit = parse_limit(request.args.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
    cursor = request.args.get("cursor") or None
    if cursor is not None and not CURSOR_RE.match(cursor):
        raise InvalidRequest("cursor is not one this API gave out", field="cursor", code="invalid_cursor")
    return PageRequest(limit=limit, cursor=cursor)


def paginate(
    session: Session,
    stmt: Select[Any],
    column: InstrumentedAttribute[Any],
    page: PageRequest,
    *,
    newest_first: bool = True,
    cursor_value: Callable[[str], Any] = str,
) -> Page[Any]:
    """Run `stmt` (selecting one entity) for one page ordered by `column`, the id the cursor holds."""
    if page.cursor is not None:
        try:
            after = cursor_value(page.cursor)
        except ValueError as e:
            raise InvalidRequest(
                "cursor is not one this API gave out", field="cursor", code="invalid_cursor"
            ) from e
        stmt = stmt.where(column < after if newest_first else column > after)
    stmt = stmt.order_by(column.desc() if newest_first else column.asc()).limit(page.limit + 1)
    rows = list(session.execute(stmt).scalars().all())
    has_more = len(rows) > page.limit
    items = rows[: page.limit]
    next_cursor = str(getattr(items[-1], column.key)) if has_more and items else None
    return Page(items=items, has_more=has_more, next_cursor=next_cursor)


def list_body(
    data: list[dict[str, Any]], has_more: bool = False, next_cursor: str | None = None
) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "next_cursor": next_cursor}
