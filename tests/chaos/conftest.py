"""Chaos fixtures: each test gets its own Redis, Postgres and S3 (moto) servers, to kill and restart.

Servers (each on a free port, kept across restarts; logs next to the test's other logs):

- `RedisServer`    ``redis-server --save "" --appendonly no``: a restart loses every message.
- `PostgresServer` a cluster made by ``initdb`` (as the ``postgres`` OS user when running as root) in a
                   temporary folder; a restart keeps the same data folder, so rows survive.
- `MotoServer`     ``moto_server``; it keeps everything in memory, so a restart loses every object.
- `TcpProxy`       a TCP relay in this process; `cut()` resets every connection and refuses new ones,
                   `restore()` listens again on the same port. Used to take S3 away from the workers
                   without losing moto's objects.

Every server has ``start()``, ``stop()`` (clean), ``kill()`` (SIGKILL) and ``restart()``; the
``servers`` fixture stops whatever is left at the end of the test, and the Postgres data folder is
removed.

``stack`` builds a whole deployment on those servers for one test: the schema migrated, a bucket, an
API key, an in-process API client (``create_app``), and `ChaosProcesses` (the e2e `Processes`, plus
killing and stopping single ones) to start ``inferq worker``/``inferq serve`` processes, all stopped
after the test. `check_job` (in ``tests/chaos/checks.py``) is the one assertion every test makes.

The ``chaos_report`` collector adds up what the tests did (faults injected, jobs, records, lost,
duplicated) and prints it at the end of the session; with ``INFERQ_CHAOS_README=1`` it also rewrites
the numbers in README.md's "Reliability" section after a run where every chaos test passed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from inferq.api.app import create_app
from inferq.shared.db import dispose_engines, session_scope
from inferq.shared.migrate import upgrade
from inferq.shared.models import Job, JobEvent, JobPart
from inferq.shared.settings import Settings
from inferq.shared.storage import S3Storage, get_storage
from inferq.shared.tenants import create_tenant_key
from tests.conftest import in_ci
from tests.e2e.conftest import ROOT, Processes, free_port
from tests.e2e.inputs import real_sentences

PG_BIN = Path(os.environ.get("INFERQ_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_SECONDS = 30
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    if in_ci():
        pytest.fail(f"{what} is missing; CI=true, so the chaos suite fails", pytrace=False)
    pytest.skip(f"{what} is missing; install it to run the chaos suite")


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy (returned); AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ---- servers -------------------------------------------------------------------------------------


class Server:
    """One server process on a fixed port: start, stop (clean), kill (SIGKILL), restart."""

    name = "server"

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"{self.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def popen_kwargs(self) -> dict[str, Any]:
        return {}

    def ready(self) -> bool:
        return _port_open(self.port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self.popen_kwargs(),
            )
        deadline = time.monotonic() + START_SECONDS
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not start on {self.port}:\n{self.logs()[-3000:]}")
            time.sleep(0.05)

    def _signal_and_wait(self, sig: int, timeout: float) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Connections in flight die with the server; wait until the port refuses new ones.
        wait_until(lambda: not _port_open(self.port), 10, f"{self.name} port {self.port} to close")

    def stop(self) -> None:
        self._signal_and_wait(signal.SIGTERM, 30)

    def kill(self) -> None:
        self._signal_and_wait(signal.SIGKILL, 10)

    def restart(self, *, hard: bool = False) -> None:
        self.kill() if hard else self.stop()
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisServer(Server):
    """redis-server without persistence: a restart starts empty."""

    name = "redis"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or "redis-server"
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _as_postgres_user() -> dict[str, Any]:
    """initdb and postgres refuse to run as root: run them as the `postgres` OS user then."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class PostgresServer(Server):
    """A Postgres cluster of its own in a temporary folder (trust auth, no fsync); restarts keep it."""

    name = "postgres"

    def __init__(self, log_dir: Path, template: Path) -> None:
        super().__init__(log_dir)
        self.root = Path(tempfile.mkdtemp(prefix="inferq-chaos-pg-"))
        self.data_dir = self.root / "data"
        shutil.copytree(template, self.data_dir, symlinks=True)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.root)], check=True)
        self.data_dir.chmod(0o700)

    def command(self) -> list[str]:
        return [
            str(PG_BIN / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.root}",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]

    def popen_kwargs(self) -> dict[str, Any]:
        return {**_as_postgres_user(), "cwd": self.root}

    def ready(self) -> bool:
        try:
            with psycopg.connect(self.libpq, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self) -> None:
        # SIGINT is Postgres' "fast" shutdown: it disconnects every client and exits cleanly.
        self._signal_and_wait(signal.SIGINT, 30)

    @property
    def libpq(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class MotoServer(Server):
    """moto_server: S3 in memory. A restart loses every bucket and object."""

    name = "moto"

    def command(self) -> list[str]:
        local = Path(sys.executable).parent / "moto_server"
        binary = str(local) if local.exists() else (shutil.which("moto_server") or str(local))
        return [binary, "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        try:
            httpx.get(self.url, timeout=1)
            return True
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class TcpProxy:
    """Relays 127.0.0.1:port to a target port. `cut()`: every connection reset, new ones refused."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        assert self._listener is None, "the proxy is already listening"
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    # RST instead of FIN: the client sees "connection reset", as when a server dies.
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._lock:
                self._sockets.discard(src)
            with contextlib.suppress(OSError):
                src.close()


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One `initdb` per session; each test copies the folder (much faster than initdb each time)."""
    _need(f"Postgres binaries in {PG_BIN}", (PG_BIN / "initdb").exists())
    root = Path(tempfile.mkdtemp(prefix="inferq-chaos-pgtemplate-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    out = subprocess.run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        cwd=root,
        **_as_postgres_user(),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {out.stderr}")
    try:
        yield data
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Servers:
    """The servers one test started; all stopped (and the Postgres folder removed) afterwards."""

    log_dir: Path
    pg_template: Path
    started: list[Server] = field(default_factory=list)
    proxies: list[TcpProxy] = field(default_factory=list)

    def redis(self) -> RedisServer:
        _need("redis-server", shutil.which("redis-server") is not None)
        return self._start(RedisServer(self.log_dir))

    def postgres(self) -> PostgresServer:
        return self._start(PostgresServer(self.log_dir, self.pg_template))

    def moto(self) -> MotoServer:
        server = MotoServer(self.log_dir)
        _need("moto_server (pip install 'moto[server]')", Path(server.command()[0]).exists())
        return self._start(server)

    def proxy(self, target_port: int) -> TcpProxy:
        proxy = TcpProxy(target_port)
        proxy.restore()
        self.proxies.append(proxy)
        return proxy

    def _start(self, server: Any) -> Any:
        self.started.append(server)
        server.start()
        return server

    def close(self) -> None:
        for proxy in self.proxies:
            proxy.cut()
        for server in reversed(self.started):
            with contextlib.suppress(Exception):
                server.kill()
            if isinstance(server, PostgresServer):
                server.remove()


@pytest.fixture
def servers(tmp_path: Path, pg_template: Path) -> Iterator[Servers]:
    group = Servers(log_dir=tmp_path, pg_template=pg_template)
    try:
        yield group
    finally:
        group.close()


# ---- processes -----------------------------------------------------------------------------------


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def owner_pid(part: JobPart) -> int:
    """The pid in a lease owner (`host:pid[:gpuN]`, see worker.runner.worker_name)."""
    assert part.lease_owner is not None
    return int(part.lease_owner.split(":")[1])


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class ChaosProcesses(Processes):
    """The e2e `Processes`, plus signals to one process or its group; a process we killed is not a failure."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir=log_dir)
        self.expected_dead: set[int] = set()

    def proc(self, name: str) -> subprocess.Popen[bytes]:
        matches = [p for n, p in self.procs if n == name]
        assert matches, f"no process named {name}"
        return matches[-1]

    def signal_group(self, name: str, sig: int) -> None:
        proc = self.proc(name)
        self.expected_dead.add(proc.pid)
        os.killpg(proc.pid, sig)

    def signal_main(self, name: str, sig: int) -> None:
        proc = self.proc(name)
        self.expected_dead.add(proc.pid)
        os.kill(proc.pid, sig)

    def wait_exit(self, name: str, timeout: float = 60) -> int:
        return self.proc(name).wait(timeout=timeout)

    def assert_alive(self) -> None:
        for name, proc in self.procs:
            if proc.pid not in self.expected_dead and proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.logs(name)[-4000:]}")


@pytest.fixture
def chaos_processes(tmp_path: Path) -> Iterator[ChaosProcesses]:
    group = ChaosProcesses(log_dir=tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


# ---- the stack -----------------------------------------------------------------------------------

# Small and fast: parts of 20 records, a 6 s lease renewed every second, a reconciler every 2 s.
FAST_ENV = {
    "INFERQ_PART_RECORDS": "20",
    "INFERQ_MAX_BATCH_SIZE": "8",
    "INFERQ_TORCH_THREADS": "1",
    "INFERQ_LEASE_SECONDS": "6",
    "INFERQ_HEARTBEAT_SECONDS": "1",
    "INFERQ_RESEND_AFTER_SECONDS": "3",
    "INFERQ_RECONCILE_INTERVAL_SECONDS": "2",
    "INFERQ_MAX_PART_ATTEMPTS": "3",
}


@dataclass
class Submitted:
    job_id: str
    ids: list[str]  # every input record's id, in input order
    path: Path


@dataclass
class Stack:
    """One deployment for one test: its servers, settings, an in-process API, and worker processes."""

    redis: RedisServer
    pg: PostgresServer
    moto: MotoServer
    env: dict[str, str]
    settings: Settings
    procs: ChaosProcesses
    http: FlaskClient
    headers: dict[str, str]
    api_key: str
    tmp_path: Path
    _workers: int = 0

    # -- processes
    def start_worker(
        self, name: str | None = None, *, beat: bool = True, queues: str = "control,inference", **env: str
    ) -> str:
        """Start `inferq worker --gpus none` and wait until it is ready; returns its name."""
        self._workers += 1
        name = name or f"worker{self._workers}"
        args = ["worker", "--gpus", "none", "--name", f"{name}@chaos", "--queues", queues]
        if beat:
            args.append("--beat")
        self.procs.start(name, args, {**self.env, **env})
        self.procs.wait_for_log(name, "ready.", timeout=120)
        return name

    def main_pid(self, name: str) -> int:
        return self.procs.proc(name).pid

    # -- jobs
    def submit(self, records: int = 200, **body: Any) -> Submitted:
        """Upload `records` real sentences (ids r00000…) and submit an embedding job on them."""
        path = self.tmp_path / f"input-{uuid.uuid4().hex[:8]}.jsonl"
        texts = real_sentences(records)
        assert len(texts) == records
        ids = [f"r{i:05d}" for i in range(records)]
        lines = (json.dumps({"id": rid, "text": text}) + "\n" for rid, text in zip(ids, texts, strict=True))
        path.write_text("".join(lines), "utf-8")
        r = self.http.post(
            "/v1/files",
            headers=self.headers,
            data={"purpose": "input", "file": (path.open("rb"), path.name)},
            content_type="multipart/form-data",
        )
        assert r.status_code == 201, r.get_json()
        body = {"type": "predict", "task": "embedding", "model": "minilm-l6", **body}
        r = self.http.post("/v1/jobs", headers=self.headers, json={**body, "input_file": r.get_json()["id"]})
        assert r.status_code == 202, r.get_json()
        return Submitted(job_id=r.get_json()["id"], ids=ids, path=path)

    def job(self, job_id: str) -> Job:
        with session_scope(self.settings) as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job

    def parts(self, job_id: str) -> list[JobPart]:
        with session_scope(self.settings) as session:
            return list(
                session.execute(select(JobPart).where(JobPart.job_id == job_id).order_by(JobPart.index))
                .scalars()
                .all()
            )

    def wait_job(self, job_id: str, timeout: float = 180, statuses: set[str] = TERMINAL) -> Job:
        def finished() -> Job | None:
            self.procs.assert_alive()
            job = self.job(job_id)
            return job if job.status in statuses else None

        try:
            return wait_until(finished, timeout, f"job {job_id} to reach {sorted(statuses)}", interval=0.3)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.describe(job_id)}") from e

    def part(self, part_id: str) -> JobPart:
        with session_scope(self.settings) as session:
            part = session.get(JobPart, part_id)
            assert part is not None
            return part

    def wait_running_part(
        self,
        job_id: str,
        owner: Callable[[int], bool] = lambda pid: True,
        timeout: float = 120,
        **where: Any,
    ) -> JobPart:
        """A part of the job that is `running` right now under a pid `owner` accepts, matching `where`."""

        def running() -> JobPart | None:
            self.procs.assert_alive()
            for part in self.parts(job_id):
                if part.status != "running" or part.lease_owner is None:
                    continue
                if owner(owner_pid(part)) and all(getattr(part, k) == v for k, v in where.items()):
                    return part
            return None

        return wait_until(running, timeout, f"a running part of {job_id} ({where})", 0.02)

    def wait_part(self, part_id: str, statuses: set[str], timeout: float) -> JobPart:
        """Wait until the part is in one of `statuses`; the failure message describes the whole job."""
        try:
            return wait_until(
                lambda: (p := self.part(part_id)).status in statuses and p,
                timeout,
                f"part {part_id} to reach {sorted(statuses)}",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.describe(self.part(part_id).job_id)}") from e

    def events(self, job_id: str, kind: str) -> list[JobEvent]:
        with session_scope(self.settings) as session:
            return list(
                session.execute(
                    select(JobEvent)
                    .where(JobEvent.job_id == job_id, JobEvent.kind == kind)
                    .order_by(JobEvent.id)
                )
                .scalars()
                .all()
            )

    def set_job(self, job_id: str, **values: Any) -> None:
        with session_scope(self.settings) as session:
            session.execute(update(Job).where(Job.id == job_id).values(**values))

    def describe(self, job_id: str) -> str:
        job = self.job(job_id)
        lines = [f"job {job.id} {job.status} {job.completed}+{job.failed}/{job.total} parts {job.parts_done}"]
        for p in self.parts(job_id):
            lines.append(
                f"  part {p.index} {p.status} attempts={p.attempts} token={p.lease_token}"
                f" owner={p.lease_owner} lease={p.lease_expires_at} sent={p.sent_at}"
            )
        for name, _ in self.procs.procs:
            lines.append(f"--- {name} (last lines)\n{self.procs.logs(name)[-2500:]}")
        return "\n".join(lines)


def stack_env(
    redis: RedisServer, pg: PostgresServer, s3_endpoint: str, bucket: str, data_dir: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update(
        {
            "INFERQ_DATABASE_URL": pg.url,
            "INFERQ_BROKER_URL": redis.url,
            "INFERQ_STORAGE_URL": f"s3://{bucket}/chaos",
            "INFERQ_S3_ENDPOINT_URL": s3_endpoint,
            "INFERQ_DATA_DIR": str(data_dir),
            "INFERQ_MODEL_CACHE_DIR": str(data_dir / "models"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(ROOT),
            **FAST_ENV,
        }
    )
    return env


@pytest.fixture
def make_stack(
    servers: Servers, chaos_processes: ChaosProcesses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Stack]]:
    """``make_stack(**env)``: own Redis, Postgres and moto servers, migrated, with a bucket and a key."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    made: list[Stack] = []

    def make(**env_overrides: str) -> Stack:
        redis, pg, moto = servers.redis(), servers.postgres(), servers.moto()
        bucket = f"chaos-{uuid.uuid4().hex[:12]}"
        data_dir = tmp_path / "data"
        env = {**stack_env(redis, pg, moto.url, bucket, data_dir), **env_overrides}
        settings = Settings.from_env({**env, "INFERQ_S3_ENDPOINT_URL": moto.url})
        upgrade(settings)
        storage = get_storage(settings)
        assert isinstance(storage, S3Storage)
        storage.ensure_bucket()
        with session_scope(settings) as session:
            key = create_tenant_key(session, "chaos")
        app = create_app(settings)
        app.config["TESTING"] = True
        stack = Stack(
            redis=redis,
            pg=pg,
            moto=moto,
            env=env,
            settings=settings,
            procs=chaos_processes,
            http=app.test_client(),
            headers={"Authorization": f"Bearer {key}"},
            api_key=key,
            tmp_path=tmp_path,
        )
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        chaos_processes.stop_all()  # before the servers go: workers flush and ack cleanly
        dispose_engines()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


# ---- the session report --------------------------------------------------------------------------


@dataclass
class ChaosReport:
    """What the chaos tests did, added up over the session."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, test: str, **counts: int) -> None:
        row = self.rows.setdefault(test, {"faults": 0, "jobs": 0, "records": 0, "lost": 0, "duplicated": 0})
        for key, value in counts.items():
            row[key] = row.get(key, 0) + value

    def totals(self) -> dict[str, int]:
        keys = ("faults", "jobs", "records", "lost", "duplicated")
        return {k: sum(int(r.get(k, 0)) for r in self.rows.values()) for k in keys}


_REPORT = ChaosReport()
README_START = "<!-- chaos-results:start -->"
README_END = "<!-- chaos-results:end -->"


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """``chaos_report(faults=1, jobs=1, records=200, lost=0, duplicated=0)`` for the current test."""
    started = time.monotonic()
    name = request.node.name

    def add(**counts: int) -> None:
        _REPORT.add(name, **counts)

    yield add
    _REPORT.rows.setdefault(name, {})["seconds"] = round(time.monotonic() - started, 1)


def render_summary(report: ChaosReport) -> str:
    """The numbers of a run as Markdown: one row per test that ran jobs, then the totals."""
    t = report.totals()
    seconds = sum(float(r.get("seconds", 0)) for r in report.rows.values())
    lines = [
        "| test | faults injected | jobs | records | lost | duplicated | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report.rows.items():
        if r.get("jobs"):
            lines.append(
                f"| `{name}` | {r['faults']} | {r['jobs']} | {r['records']} | {r['lost']} "
                f"| {r['duplicated']} | {r.get('seconds', 0):.0f} |"
            )
    lines.append(
        f"| **total** | **{t['faults']}** | **{t['jobs']}** | **{t['records']}** | **{t['lost']}** "
        f"| **{t['duplicated']}** | **{seconds:.0f}** |"
    )
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    if not _REPORT.rows:
        return
    terminalreporter.write_sep("-", "chaos summary")
    summary = render_summary(_REPORT)
    terminalreporter.write_line(summary)
    if os.environ.get("INFERQ_CHAOS_README") == "1" and exitstatus == 0:
        readme = ROOT / "README.md"
        text = readme.read_text("utf-8")
        pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
        if pattern.search(text):
            readme.write_text(pattern.sub(f"{README_START}\n{summary}\n{README_END}", text), "utf-8")
            terminalreporter.write_line("README.md updated with these numbers")
