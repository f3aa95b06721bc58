"""The job's history: one `job_events` row per state change and per notable step."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from inferq.shared.models import JobEvent, utcnow


def record_event(
    session: Session,
    job_id: str,
    kind: str,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
) -> None:
    session.add(
        JobEvent(
            job_id=job_id,
            kind=kind,
            message=message,
            data=data or {},
            from_status=from_status,
            to_status=to_status,
            created_at=utcnow(),
        )
    )
