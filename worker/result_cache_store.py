"""The result cache's rows and its use in a part: look up the part's keys, run the model on the misses
only, store what was computed. Keys and stored results are `worker.result_cache`.

Rows are results, not job state: they are read and written here, outside `shared.jobs`. Inserts never
overwrite (ON CONFLICT DO NOTHING on Postgres and SQLite, read-then-insert elsewhere), go in key order and
in small transactions, and a failure to store is logged, never a failed part: two workers storing the
same key at once both succeed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from inferq.shared.db import session_scope
from inferq.shared.models import ResultCache, utcnow
from inferq.shared.records import Record
from inferq.shared.registry import ResolvedModel
from inferq.shared.settings import Settings
from inferq.worker.result_cache import KeySpace, plan_part

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 500  # keys per SELECT … WHERE key IN (…)
STORE_CHUNK = 200  # rows per INSERT (one transaction each)

# The runner's predict step: (records to compute, records already done) -> outputs, stats, tokens.
Predict = Callable[[list[Record], int], tuple[list[dict[str, Any]], dict[str, Any], list[int]]]


def key_space(model: ResolvedModel, task: str, params: Mapping[str, Any]) -> KeySpace:
    """The part's key space, with `precision` as this worker's device runs it."""
    from inferq.worker.inference import autocast_dtype, precision_name, resolve_device

    precision = precision_name(autocast_dtype(resolve_device(), str(params.get("precision") or "auto")))
    return KeySpace.of(model, task, params, precision)


def lookup(settings: Settings, tenant_id: str, keys: Iterable[str]) -> dict[str, str]:
    """The tenant's stored results for `keys`: one SELECT per `LOOKUP_CHUNK` keys."""
    wanted = sorted(set(keys))
    found: dict[str, str] = {}
    if not wanted:
        return found
    with session_scope(settings) as session:
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            rows = session.execute(
                select(ResultCache.key, ResultCache.result).where(
                    ResultCache.tenant_id == tenant_id,
                    ResultCache.key.in_(wanted[start : start + LOOKUP_CHUNK]),
                )
            )
            found.update((key, result) for key, result in rows.tuples())
    return found


def _insert_absent(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose key is not stored yet; the number of rows actually inserted.

    Postgres and SQLite: one INSERT … ON CONFLICT DO NOTHING RETURNING key (counted by RETURNING: the
    driver's rowcount is not reliable for multi-row inserts). Elsewhere `_insert_missing`."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    else:
        return _insert_missing(session, rows)
    stmt = (
        upsert(ResultCache)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[ResultCache.tenant_id, ResultCache.key])
        .returning(ResultCache.key)
    )
    return len(session.execute(stmt).all())


def _insert_missing(session: Session, rows: list[dict[str, Any]]) -> int:
    """Any SQL database: read which of the rows' keys are stored, insert the others. A worker storing
    the same key between the two statements makes the INSERT fail: `store` logs it (a later miss)."""
    present: set[tuple[str, str]] = set()
    for tenant in {row["tenant_id"] for row in rows}:
        keys = [row["key"] for row in rows if row["tenant_id"] == tenant]
        present.update(
            (tenant, key)
            for key in session.execute(
                select(ResultCache.key).where(ResultCache.tenant_id == tenant, ResultCache.key.in_(keys))
            ).scalars()
        )
    missing = [row for row in rows if (row["tenant_id"], row["key"]) not in present]
    if missing:
        session.execute(insert(ResultCache), missing)
    return len(missing)


def store(settings: Settings, tenant_id: str, results: Mapping[str, str]) -> int:
    """Store new results (key -> result) for the tenant unless present; how many rows were added.

    Never raises: a result that is not stored is only a later miss.
    """
    items = sorted(results.items())
    stored = 0
    now = utcnow()
    for start in range(0, len(items), STORE_CHUNK):
        rows = [
            {"tenant_id": tenant_id, "key": key, "result": result, "created_at": now}
            for key, result in items[start : start + STORE_CHUNK]
        ]
        try:
            with session_scope(settings) as session:
                stored += _insert_absent(session, rows)
        except Exception as e:  # the database is down, the tenant is gone…: the part still succeeds
            log.warning(
                "result cache: %d of %d results not stored: %s: %s",
                len(items) - start,
                len(items),
                type(e).__name__,
                e,
            )
            break
    return stored


def predict_cached(
    settings: Settings,
    tenant_id: str,
    space: KeySpace,
    records: list[Record],
    predict: Predict,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[int], dict[str, str]]:
    """`predict` over the part's records that have no stored result, each distinct input once.

    Returns the outputs of every record in input order (stored results for hits), the stats (the
    predictor's plus the cache counts), the tokens per record (0 where nothing was computed), and the
    new results to store once the part's objects are written.
    """
    started = time.perf_counter()
    keys = [space.key(record.value) for record in records]
    plan = plan_part(keys, lookup(settings, tenant_id, (k for k in keys if k is not None)))
    lookup_seconds = time.perf_counter() - started
    if plan.bad_results:
        log.warning("result cache: %d stored results did not decode; recomputed", plan.bad_results)
    computed = [records[i] for i in plan.compute]
    outputs, stats, tokens = predict(computed, len(records) - len(computed))
    merged = plan.merge(outputs, tokens)
    stats.update(plan.stats(), cache_lookup_seconds=round(lookup_seconds, 4))
    stats.setdefault("precision", space.precision)
    return merged.outputs, stats, merged.tokens, merged.new_results
