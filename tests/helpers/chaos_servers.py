"""The chaos suite's servers: each test gets its own Redis, Postgres and S3 (moto), to kill and restart.

Servers (each on a free port, kept across restarts; logs next to the test's other logs):

- `RedisServer`    ``redis-server --save "" --appendonly no``: a restart loses every message.
- `PostgresServer` a cluster copied from a template made by ``initdb`` (`init_pg_template`; as the
                   ``postgres`` OS user when running as root) into a temporary folder; a restart keeps the
                   same data folder, so rows survive.
- `MotoServer`     ``moto_server``; it keeps everything in memory, so a restart loses every object.
- `TcpProxy`       a TCP relay in this process; `cut()` resets every connection and refuses new ones,
                   `restore()` listens again on the same port. Used to take S3 away from the workers
                   without losing moto's objects.

Every server has ``start()``, ``stop()`` (clean), ``kill()`` (SIGKILL) and ``restart()``; `Servers` is one
test's group of them, and ``close()`` stops whatever is left and removes the Postgres data folder (the
``servers`` fixture in ``tests/chaos/conftest.py`` calls it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.helpers.ports import free_port
from tests.helpers.services import missing, moto_binary

PG_BIN = Path(os.environ.get("INFERQ_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_SECONDS = 30


def need(what: str, ok: bool) -> None:
    """Skip the chaos test (fail it when ``CI=true``) unless `ok`: `what` is there."""
    if not ok:
        missing(f"{what} is missing for the chaos suite")


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


def port_open(port: int) -> bool:
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
        return port_open(self.port)

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
        wait_until(lambda: not port_open(self.port), 10, f"{self.name} port {self.port} to close")

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


def as_postgres_user() -> dict[str, Any]:
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
        return {**as_postgres_user(), "cwd": self.root}

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
        return [moto_binary() or "moto_server", "-H", "127.0.0.1", "-p", str(self.port)]

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


def init_pg_template() -> Path:
    """One `initdb` (trust auth, no sync) in a new temporary folder: its data folder, which each
    `PostgresServer` copies (much faster than initdb each time). The caller removes its parent."""
    need(f"Postgres binaries in {PG_BIN}", (PG_BIN / "initdb").exists())
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
        **as_postgres_user(),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {out.stderr}")
    return data


@dataclass
class Servers:
    """The servers one test started; all stopped (and the Postgres folder removed) afterwards."""

    log_dir: Path
    pg_template: Path
    started: list[Server] = field(default_factory=list)
    proxies: list[TcpProxy] = field(default_factory=list)

    def redis(self) -> RedisServer:
        need("redis-server", shutil.which("redis-server") is not None)
        return self._start(RedisServer(self.log_dir))

    def postgres(self) -> PostgresServer:
        return self._start(PostgresServer(self.log_dir, self.pg_template))

    def moto(self) -> MotoServer:
        need("moto_server (pip install 'moto[server]')", moto_binary() is not None)
        return self._start(MotoServer(self.log_dir))

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
