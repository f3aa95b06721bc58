"""`shared.after_commit`: messages for ids collected in a transaction go only once it has committed.

On the embedded mode's SQLite database and filesystem broker, whose queue depths are read back."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from sqlalchemy import select

from inferq.shared import queue
from inferq.shared.after_commit import send_after_commit
from inferq.shared.db import session_scope
from inferq.shared.models import Tenant
from inferq.shared.queue_depth import queue_depths
from inferq.shared.settings import Settings
from inferq.shared.tenants import create_tenant_key


def control_depth(settings: Settings) -> int:
    return queue_depths(settings)[queue.QUEUE_CONTROL]


def test_one_message_per_id_goes_once_the_transaction_commits(embedded_settings: Settings) -> None:
    # given: a transaction that collects the plans of two jobs and a webhook delivery
    with session_scope(embedded_settings) as session:
        send_after_commit(session, queue.TASK_PLAN, ["job_a", "job_b"], "plan of job")
        send_after_commit(session, queue.TASK_WEBHOOK, ["msg_1"], "webhook delivery")
        send_after_commit(session, queue.TASK_PLAN, [], "plan of job")
        # then: nothing is sent before the commit
        assert control_depth(embedded_settings) == 0
    # when: it has committed; then: one message per id
    assert control_depth(embedded_settings) == 3


def test_nothing_goes_when_the_transaction_rolls_back(embedded_settings: Settings) -> None:
    # given: ids collected in a transaction
    # when: it rolls back
    with pytest.raises(RuntimeError), session_scope(embedded_settings) as session:
        send_after_commit(session, queue.TASK_PLAN, ["job_a"], "plan of job")
        raise RuntimeError("rolled back")
    # then: nothing was sent
    assert control_depth(embedded_settings) == 0


def test_an_unreachable_broker_does_not_fail_the_commit(
    embedded_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a broker nothing listens on
    settings = replace(embedded_settings, broker_url="redis://127.0.0.1:1/0")
    caplog.set_level(logging.WARNING)  # the root logger's level: an in-process worker may have raised it
    # when: a transaction that writes a row and collects a plan commits
    with session_scope(settings) as session:
        create_tenant_key(session, "acme")
        send_after_commit(session, queue.TASK_PLAN, ["job_a"], "plan of job")
    # then: the row is committed, and the message that could not go is logged for the reconciler
    with session_scope(embedded_settings) as session:
        assert session.execute(select(Tenant.name)).scalars().all() == ["acme"]
    assert any(r.levelno == logging.WARNING and "job_a" in r.getMessage() for r in caplog.records)
