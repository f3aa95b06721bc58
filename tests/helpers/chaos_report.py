"""What the chaos tests did (faults injected, jobs, records, lost, duplicated), added up over the session:
the ``chaos_report`` fixture adds a test's counts to `REPORT`, and the terminal summary prints
`render_summary`; with ``INFERQ_CHAOS_README=1`` it also rewrites the numbers in README.md's
"Reliability" section after a run where every chaos test passed (`write_readme`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ChaosReport:
    """What the chaos tests did, added up over the session."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, test: str, **counts: int) -> None:
        row = self.rows.setdefault(test, {"faults": 0, "jobs": 0, "records": 0, "lost": 0, "duplicated": 0})
        for key, value in counts.items():
            row[key] = row.get(key, 0) + value

    def totals(self) -> dict[str, int]:
        keys = ("faults", "jobs", "records", "lost", "duplicated")
        return {k: sum(int(r.get(k, 0)) for r in self.rows.values()) for k in keys}


REPORT = ChaosReport()
README_START = "<!-- chaos-results:start -->"
README_END = "<!-- chaos-results:end -->"


def render_summary(report: ChaosReport) -> str:
    """The numbers of a run as Markdown: one row per test that ran jobs, then the totals."""
    t = report.totals()
    seconds = sum(float(r.get("seconds", 0)) for r in report.rows.values())
    lines = [
        "| test | faults injected | jobs | records | lost | duplicated | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report.rows.items():
        if r.get("jobs"):
            lines.append(
                f"| `{name}` | {r['faults']} | {r['jobs']} | {r['records']} | {r['lost']} "
                f"| {r['duplicated']} | {r.get('seconds', 0):.0f} |"
            )
    lines.append(
        f"| **total** | **{t['faults']}** | **{t['jobs']}** | **{t['records']}** | **{t['lost']}** "
        f"| **{t['duplicated']}** | **{seconds:.0f}** |"
    )
    return "\n".join(lines)


def write_readme(readme: Path, summary: str) -> bool:
    """Put `summary` between the chaos-results markers of `readme`; False where it has none."""
    text = readme.read_text("utf-8")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(f"{README_START}\n{summary}\n{README_END}", text), "utf-8")
    return True
