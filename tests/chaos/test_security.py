"""No one let in: a pickled message never runs, and the code never opts into unsafe loading."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inferq.shared import queue
from inferq.shared.queue import celery_config, get_celery
from inferq.shared.settings import Settings
from tests.helpers.chaos_checks import check_job
from tests.helpers.chaos_servers import wait_until
from tests.helpers.chaos_stack import Stack
from tests.helpers.processes import ROOT

pytestmark = pytest.mark.chaos

SCANNED = ("api", "shared", "worker")


class Planted:
    """Unpickling this opens (creates) a file: code that runs on deserialization."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.slow
def test_a_pickled_message_is_refused_and_its_payload_never_runs(
    stack: Stack, chaos_report: Callable[..., None]
) -> None:
    # given: a worker
    stack.start_worker("w1")
    marker = stack.tmp_path / f"pwned-{uuid.uuid4().hex}"

    # when: someone with access to Redis publishes pickle-serialized task messages on both queues
    app = get_celery(stack.settings)
    for name in (queue.TASK_RUN_PART, queue.TASK_PLAN):
        app.send_task(name, args=[Planted(marker)], queue=queue.TASK_QUEUES[name], serializer="pickle")

    # then: the worker refuses both (JSON only) and the payload never ran
    wait_until(
        lambda: stack.procs.logs("w1").count("Refusing to deserialize untrusted content of type pickle") >= 2,
        60,
        "the worker to refuse the pickled messages",
        interval=0.2,
    )
    assert not marker.exists()
    # and: the worker keeps working
    job = stack.submit(100)
    stack.wait_job(job.job_id)
    check_job(stack, job, chaos_report, faults=2)
    assert not marker.exists()


def _python_files() -> Iterator[Path]:
    for folder in SCANNED:
        yield from sorted((ROOT / folder).rglob("*.py"))


def unsafe_calls(source: str) -> list[str]:
    """What in `source` would run code from data: trust_remote_code=True, torch.load without
    weights_only=True, pickle loading, or a pickle serializer for Celery/kombu."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                found.append(f"line {node.value.lineno}: trust_remote_code not False")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            if (owner, node.func.attr) == ("torch", "load"):
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                if not (
                    weights_only
                    and isinstance(weights_only[0].value, ast.Constant)
                    and weights_only[0].value.value is True
                ):
                    found.append(f"line {node.lineno}: torch.load without weights_only=True")
            if owner in ("pickle", "cPickle", "dill", "joblib") and node.func.attr in ("load", "loads"):
                found.append(f"line {node.lineno}: {owner}.{node.func.attr}")
        if isinstance(node, ast.Constant) and node.value in ("pickle", "application/x-python-serialize"):
            found.append(f"line {node.lineno}: {node.value!r} (a pickle serializer)")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "AutoModel.from_pretrained(path, trust_remote_code=True)",
        "state = torch.load(path)",
        "state = torch.load(path, weights_only=False)",
        "obj = pickle.loads(data)",
        'app.conf.accept_content = ["json", "pickle"]',
        'send_task(name, serializer="pickle")',
    ],
)
def test_the_scanner_finds_unsafe_loading(snippet: str) -> None:
    assert unsafe_calls(snippet), snippet


def test_no_code_loads_untrusted_data_unsafely() -> None:
    # given: every Python file of the service
    files = list(_python_files())
    assert len(files) > 20

    # when: each is scanned
    problems = [f"{path.relative_to(ROOT)} {p}" for path in files for p in unsafe_calls(path.read_text())]

    # then: nothing opts into remote code, pickle weights or pickle messages
    assert problems == []


def test_the_queue_accepts_json_only() -> None:
    config = celery_config(Settings.from_env({"INFERQ_BROKER_URL": "redis://127.0.0.1:1/0"}))
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
    assert config["result_accept_content"] == ["json"]
