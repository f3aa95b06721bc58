"""`inferq status` without a job: the deployment as `/readyz` sees it, and when the reconciler last ran."""

from __future__ import annotations

from typing import Any


def deployment_lines(ready: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The lines to print for a `/readyz` body, and the warnings among them (the exit status is 1
    when there are any)."""
    checks = ready.get("checks") or {}
    parts = [
        f"{name} ok ({check.get('ms', 0)} ms)" if check.get("ok") else f"{name} DOWN: {check.get('error')}"
        for name, check in checks.items()
    ]
    lines = [f"{ready.get('status', 'unknown')}: {', '.join(parts)}"]
    warnings: list[str] = []
    reconciler = ready.get("reconciler")
    if reconciler is None:
        warnings.append("warning: the server could not say when the reconciler last ran")
    elif reconciler.get("last_run_at") is None:
        lines.append(f"reconciler: never ran (every {reconciler.get('interval_seconds')} s)")
    else:
        lines.append(
            f"reconciler: last ran {reconciler['last_run_at']}, {reconciler.get('age_seconds')} s ago, "
            f"by {reconciler.get('last_run_by')} (every {reconciler.get('interval_seconds')} s)"
        )
    if reconciler and reconciler.get("warning"):
        warnings.append(f"warning: {reconciler['warning']}")
    return lines + warnings, warnings
