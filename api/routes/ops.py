"""Operations, without auth: liveness, readiness, Prometheus metrics, the OpenAPI document and its docs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response
from sqlalchemy import text

from inferq.api.context import current_settings
from inferq.api.metrics import current_metrics
from inferq.api.openapi import docs_html, openapi_document
from inferq.shared import reconciler_state
from inferq.shared.db import get_engine
from inferq.shared.queue import ping_broker
from inferq.shared.storage import get_storage

bp = Blueprint("ops", __name__)

MAX_ERROR_LENGTH = 300


def _check(probe: Callable[[], None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        probe()
    except Exception as e:  # a readiness probe reports any failure, whatever raised it
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:MAX_ERROR_LENGTH]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    settings = current_settings()

    def database() -> None:
        with get_engine(settings).connect() as conn:
            conn.execute(text("SELECT 1"))

    checks = {
        "database": _check(database),
        "broker": _check(lambda: ping_broker(settings)),
        "storage": _check(lambda: get_storage(settings).ping()),
    }
    failed = [name for name, check in checks.items() if not check["ok"]]
    # Informational (never a reason to be unready): when a worker last ran the reconciler.
    reconciler = reconciler_state.describe(settings) if checks["database"]["ok"] else None
    if not failed:
        return {"status": "ready", "checks": checks, "reconciler": reconciler}, 200
    return {
        "status": "unavailable",
        "checks": checks,
        "reconciler": reconciler,
        "error": {
            "code": "not_ready",
            "message": f"unreachable: {', '.join(failed)}",
            "field": None,
        },
    }, 503


@bp.get("/metrics")
def metrics() -> Response:
    return current_metrics().render()


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return openapi_document()


@bp.get("/docs")
def docs() -> Response:
    return Response(docs_html(openapi_document()), status=200, content_type="text/html; charset=utf-8")
