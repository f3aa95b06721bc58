"""Reading Prometheus text exposition in tests."""

from __future__ import annotations

import re


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the series `name{labels}` (exactly those labels), or None when it is absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if series.split("{")[0] == name and found == labels:
            return float(value)
    return None
