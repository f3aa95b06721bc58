"""Fixtures of the `shared.jobs` tests: a real SQLite database migrated to head."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from inferq.shared.db import session_scope
from inferq.shared.settings import Settings


@pytest.fixture
def settings(embedded_settings: Settings) -> Settings:
    return embedded_settings


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    """A session whose work the test commits step by step with `session.commit()`."""
    with session_scope(settings) as s:
        yield s
