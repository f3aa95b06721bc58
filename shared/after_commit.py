"""Broker messages that go only once a session's transaction has committed.

`send_after_commit` collects ids in `session.info` during the transaction; a SQLAlchemy `after_commit`
hook sends one message per id, and an `after_rollback` hook forgets them. A message that cannot be sent
then is logged, never raised (the commit has already happened): the reconciler re-sends from SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import event
from sqlalchemy.orm import Session

from inferq.shared import queue
from inferq.shared.db import SETTINGS_INFO
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

# session.info key: {(task name, what the ids are): ids to send}, in the order they were added
_TO_SEND = "inferq_send_after_commit"


def send_after_commit(session: Session, task_name: str, ids: Iterable[str], what: str) -> None:
    """Send `task_name` with each of `ids` once the session's transaction has committed; nothing if it
    rolls back. `what` names one id in log lines, e.g. "plan of job"."""
    ids = list(ids)
    if not ids:
        return
    to_send: dict[tuple[str, str], list[str]] = session.info.setdefault(_TO_SEND, {})
    to_send.setdefault((task_name, what), []).extend(ids)
    if not event.contains(session, "after_commit", _send_committed):
        event.listen(session, "after_commit", _send_committed)
        event.listen(session, "after_rollback", _forget_rolled_back)


def _send_committed(session: Session) -> None:
    to_send: dict[tuple[str, str], list[str]] = session.info.pop(_TO_SEND, {})
    settings = session.info.get(SETTINGS_INFO)
    for (task_name, what), ids in to_send.items():
        if not isinstance(settings, Settings):
            log.info("no settings to send the %s %s with; the reconciler will send them", what, ids)
            continue
        for id_ in ids:
            try:
                queue.try_send(task_name, [id_], settings=settings)
            except Exception as e:  # never fail a commit that already happened; the reconciler re-sends
                log.warning("could not send the %s %s: %s", what, id_, e)


def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_TO_SEND, None)
