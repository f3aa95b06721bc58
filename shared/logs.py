"""Logging set-up: one line per event, JSON when INFERQ_LOG_JSON is set."""

from __future__ import annotations

import json
import logging
import sys

# Attributes a log call passes with `extra=` (see `log_ids`) that JSON lines carry as fields.
LOG_ID_FIELDS = ("job_id", "part_id", "tenant_id", "delivery_id")


def log_ids(job_id: str | None = None, part_id: str | None = None, **more: str) -> dict[str, str]:
    """`extra=` for a log call about a job or part: `log.info("…", extra=log_ids(job_id, part_id))`."""
    ids = {"job_id": job_id, "part_id": part_id, **more}
    return {k: v for k, v in ids.items() if v is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attr in LOG_ID_FIELDS:
            if hasattr(record, attr):
                payload[attr] = getattr(record, attr)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(level: str = "INFO", json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
