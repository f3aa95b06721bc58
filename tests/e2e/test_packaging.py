"""The built wheel, installed into fresh virtual environments without the repository.

- The full install (the wheel plus the service's libraries) migrates SQLite and Postgres with
  `inferq db upgrade` and serves with `inferq up`.
- The bare install is the light client: it has only httpx, orjson and click (no torch, SQLAlchemy,
  Flask, Celery or boto3), talks to that server, and its server commands name the extra to install.

Nothing is downloaded: the fresh environments see the libraries of the running one through a `.pth`
file (all of them for the full install; only the client's for the bare one) and get the wheel itself
with `pip --no-deps`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.ports import free_port
from tests.helpers.processes import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The client's libraries and theirs (httpx → httpcore, h11, anyio, sniffio, idna, certifi).
CLIENT_LIBRARIES = ("httpx", "httpcore", "h11", "anyio", "sniffio", "idna", "certifi", "orjson", "click")
SERVICE_LIBRARIES = ("torch", "sqlalchemy", "flask", "celery", "boto3", "transformers")


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def inferq(self) -> Path:
        return self.root / "bin" / "inferq"

    def site_packages(self) -> Path:
        out = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(out.stdout.strip())


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would find the repository's own code."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("INFERQ_")}
    return {**env, **extra}


def make_venv(path: Path, wheel: Path, library_dirs: list[Path]) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    venv = Venv(path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv.python),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=300,
        env=clean_env(),
    )
    (venv.site_packages() / "libraries.pth").write_text("".join(f"{d}\n" for d in library_dirs))
    return venv


def run(venv: Venv, args: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> str:
    out = subprocess.run(
        [str(venv.inferq), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, f"inferq {' '.join(args)}: {out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            ".",
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
        env=clean_env(),
    )
    (found,) = out.glob("inferq-*.whl")
    return found


@pytest.fixture(scope="module")
def full_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return make_venv(
        tmp_path_factory.mktemp("full") / "venv", wheel, [Path(sysconfig.get_paths()["purelib"])]
    )


@pytest.fixture(scope="module")
def light_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    libraries = tmp_path_factory.mktemp("client-libraries")
    here = Path(sysconfig.get_paths()["purelib"])
    for entry in here.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top in CLIENT_LIBRARIES or top.rstrip("_") in CLIENT_LIBRARIES:
            (libraries / entry.name).symlink_to(entry)
    return make_venv(tmp_path_factory.mktemp("light") / "venv", wheel, [libraries])


@pytest.fixture
def server(full_venv: Venv, tmp_path: Path) -> Iterator[str]:
    """`inferq up` of the full install on the embedded default, in a folder away from the repository."""
    port = free_port()
    env = clean_env(INFERQ_DATA_DIR=str(tmp_path / "data"))
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [str(full_venv.inferq), "up", "--port", str(port), "--workers", "1"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "up.log").read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "inferq up did not become ready in 120 s"
            time.sleep(0.5)
        key = run(full_venv, ["keys", "create", "--tenant", "wheel"], tmp_path, env).strip()
        yield f"{url} {key}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a busy machine: stop it anyway, the test is over
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_wheel_installs_one_namespace_with_its_migrations(full_venv: Venv, tmp_path: Path) -> None:
    # when the installed package is imported from a folder away from the repository
    code = "import inferq, inferq.shared.migrate as m; print(inferq.__file__); print(m.MIGRATIONS_DIR)"
    out = subprocess.run(
        [str(full_venv.python), "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True, text=True
    )
    # then it is the venv's copy, migrations included, and nothing else is installed at the top level
    assert out.returncode == 0, out.stderr
    package, migrations = (Path(line) for line in out.stdout.split())
    assert package.is_relative_to(full_venv.root)
    assert (migrations / "versions").is_dir() and (migrations / "alembic.ini").is_file()
    installed = {
        p.name for p in full_venv.site_packages().iterdir() if not p.name.endswith((".pth", "-info"))
    }
    assert installed - {"__pycache__"} == {"inferq"}


def test_the_wheel_upgrades_sqlite_and_postgres(
    full_venv: Venv, tmp_path: Path, make_pg_database: object
) -> None:
    # given an empty SQLite file and an empty Postgres database
    pg_url = make_pg_database()  # type: ignore[operator]
    for url in (f"sqlite:///{tmp_path / 'wheel.db'}", pg_url):
        # when the installed CLI upgrades it
        run(full_venv, ["db", "upgrade"], tmp_path, clean_env(INFERQ_DATABASE_URL=url))
        # then a second upgrade finds nothing to do and keys can be made in it
        run(full_venv, ["db", "upgrade"], tmp_path, clean_env(INFERQ_DATABASE_URL=url))
        key = run(
            full_venv, ["keys", "create", "--tenant", "t"], tmp_path, clean_env(INFERQ_DATABASE_URL=url)
        )
        assert key.strip()


def test_the_bare_install_is_a_light_client_of_a_running_server(
    light_venv: Venv, server: str, tmp_path: Path
) -> None:
    url, key = server.split()
    records = tmp_path / "in.jsonl"
    records.write_text('{"id":"a","text":"the first sentence"}\n{"id":"b","text":"and the second"}\n')
    script = (
        "import sys, inferq\n"
        "with inferq.Client(sys.argv[1], sys.argv[2]) as c:\n"
        "    job = c.submit_file(sys.argv[3], task='embedding', model='minilm-l6')\n"
        "    job = c.wait(job.id, timeout=180)\n"
        "    rows = list(c.iter_results(job.id))\n"
        "    print(job.status, len(rows), len(rows[0]['embedding']))\n"
    )
    # when the bare install's client runs a job on the server
    out = subprocess.run(
        [str(light_venv.python), "-c", script, url, key, str(records)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    # then the job succeeds through it
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["succeeded", "2", "384"]

    # and the service's libraries are absent from that environment
    probe = "import importlib.util as u; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))"
    absent = subprocess.run(
        [str(light_venv.python), "-c", "import sys; " + probe, *SERVICE_LIBRARIES],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert absent.returncode == 0, absent.stderr
    assert absent.stdout.split() == []

    # and the client half of the CLI works, while a server command names the extra it needs
    env = clean_env(INFERQ_URL=url, INFERQ_API_KEY=key)
    assert "succeeded" in run(light_venv, ["jobs"], tmp_path, env)
    serve = subprocess.run(
        [str(light_venv.inferq), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert serve.returncode != 0
    assert "pip install 'inferq[server]'" in serve.stderr
