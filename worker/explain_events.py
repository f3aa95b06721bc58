"""What a job's events say about its explanations (`params.explain`); no torch, for the finalizer.

Each part that computed explanations records `explained` (records), `explain_method` and
`explain_seconds` in its stats (the `part_done` event); the finalizer adds one `explanations` event for
the job from those, e.g. "explanations: gradient x input for 1,000 records in 3.2s".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TEXT_METHOD = "gradient_x_input"
IMAGE_METHOD = "gradient"
EVENT_KIND = "explanations"
METHOD_NAMES = {TEXT_METHOD: "gradient x input", IMAGE_METHOD: "gradient saliency maps"}


def explanation_event(
    part_stats: Sequence[dict[str, Any] | None],
) -> tuple[str, str, dict[str, Any]] | None:
    """The job event's kind, message and data, or None when no part explained anything."""
    records = 0
    seconds = 0.0
    methods: set[str] = set()
    for stats in part_stats:
        if not stats or not stats.get("explained"):
            continue
        records += int(stats["explained"])
        seconds += float(stats.get("explain_seconds") or 0.0)
        if stats.get("explain_method"):
            methods.add(str(stats["explain_method"]))
    if not records:
        return None
    method = ", ".join(METHOD_NAMES.get(m, m) for m in sorted(methods)) or "explanations"
    message = f"explanations: {method} for {records:,} records in {seconds:.1f}s"
    return (
        EVENT_KIND,
        message,
        {"records": records, "methods": sorted(methods), "explain_seconds": round(seconds, 4)},
    )
