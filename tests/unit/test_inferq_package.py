"""`import inferq` is the Python client (inferq/client.py), as installed by `pip install -e .`."""

from __future__ import annotations

import subprocess
import sys

import inferq
import inferq.client


def test_the_package_exposes_the_client_and_its_errors() -> None:
    assert inferq.Client is inferq.client.Client
    assert issubclass(inferq.NotFoundError, inferq.ApiError)
    assert issubclass(inferq.ApiError, inferq.ClientError)
    assert inferq.Job is inferq.client.Job
    assert set(inferq.__all__) <= set(dir(inferq))


def test_it_imports_from_anywhere_not_only_the_repository(tmp_path: object) -> None:
    # when: a fresh interpreter imports it from an unrelated folder
    out = subprocess.run(
        [sys.executable, "-c", "import inferq; print(inferq.Client.__name__, inferq.__name__)"],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # then
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Client", "inferq"]
