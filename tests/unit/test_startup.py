"""What `inferq serve` does before it listens (api.startup): an in-process warm-up that never holds the
start for long, and the start-up heap frozen out of the garbage collector's full collections."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask

from inferq.api.app import create_app
from inferq.api.startup import freeze_heap, warm_up
from inferq.shared.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give frozen objects back to the collector after the test, as the rest of the session expects."""
    yield
    gc.unfreeze()


def test_the_warm_up_answers_readyz_in_process(embedded_settings: Settings) -> None:
    # given the app of an embedded deployment (SQLite, storage folder, filesystem broker)
    app = create_app(embedded_settings)
    asked: list[str] = []
    app.before_request(lambda: asked.append("readyz"))

    # when it is warmed up
    seconds = warm_up(app, timeout=30)

    # then /readyz was answered once, inside the process
    assert asked == ["readyz"]
    assert seconds < 30


def test_a_warm_up_that_hangs_does_not_hold_the_start_past_its_timeout() -> None:
    # given an app whose readiness probe hangs (a database that does not answer)
    release = threading.Event()
    app = Flask(__name__)

    @app.get("/readyz")
    def readyz() -> str:
        release.wait(30)
        return "late"

    # when it is warmed up with a 0.3 s limit
    started = time.perf_counter()
    warm_up(app, timeout=0.3)
    waited = time.perf_counter() - started
    release.set()

    # then the start went on after about 0.3 s
    assert 0.25 <= waited < 5


@pytest.mark.usefixtures("unfrozen")
def test_freezing_leaves_full_collections_only_what_was_made_since() -> None:
    # given the objects of this process (pytest, Flask, SQLAlchemy… imported)
    before = len(gc.get_objects())

    try:
        # when the heap is frozen and a few objects are made afterwards
        frozen = freeze_heap()
        made = [[i] for i in range(100)]

        # then everything that existed is frozen (frozen objects may still die, never join), and the
        # collector tracks only the new objects
        assert frozen >= before * 0.9
        assert gc.get_freeze_count() <= frozen
        assert 100 <= len(gc.get_objects()) < before * 0.1
        assert len(made) == 100
    finally:
        gc.unfreeze()
