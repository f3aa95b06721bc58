"""The full distributed stack for benchmarks, all real processes on this machine: a moto S3 server, a
fresh Postgres database, a Redis database number (claimed the way the test suite claims them),
`inferq serve`, and N `inferq worker` processes. Everything it starts is stopped by `close()`.

Needs Postgres (INFERQ_TEST_POSTGRES_URL, default postgres@127.0.0.1:5432), Redis
(INFERQ_TEST_REDIS_URL, default 127.0.0.1:6379) and moto_server in the venv, as `make test` does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_PG = (
    os.environ.get("INFERQ_TEST_POSTGRES_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("INFERQ_TEST_REDIS_URL") or "redis://127.0.0.1:6379"
CLAIM_PREFIX = "inferq-test:db-claim:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    def __init__(self, work: Path, *, extra_env: dict[str, str] | None = None) -> None:
        self.work = work
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.db_name = f"inferq_bench_{uuid.uuid4().hex[:10]}"
        self.redis_db: int | None = None
        self.token = f"bench:{os.getpid()}:{uuid.uuid4().hex}"
        self.env: dict[str, str] = {}
        self.url = ""
        self.key = ""
        self.extra_env = extra_env or {}

    def __enter__(self) -> Stack:
        try:
            self._start_services()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- services ------------------------------------------------------------------------------------

    def _start_services(self) -> None:
        import psycopg
        import redis
        from sqlalchemy import make_url

        admin = make_url(ADMIN_PG)
        with psycopg.connect(
            admin.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        pg_url = admin.set(database=self.db_name).render_as_string(hide_password=False)
        client = redis.Redis.from_url(REDIS, db=0)
        for n in range(15, 0, -1):
            if client.set(f"{CLAIM_PREFIX}{n}", self.token, nx=True, ex=3600):
                self.redis_db = n
                break
        if self.redis_db is None:
            raise RuntimeError("no free Redis database number (1..15)")
        redis.Redis.from_url(REDIS, db=self.redis_db).flushdb()
        s3_port = free_port()
        moto = Path(sys.executable).parent / "moto_server"
        self._spawn("moto", [str(moto), "-H", "127.0.0.1", "-p", str(s3_port)], {**os.environ})
        endpoint = f"http://127.0.0.1:{s3_port}"
        self._wait_http(f"{endpoint}/", "moto")
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")},
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "INFERQ_DATABASE_URL": pg_url,
            "INFERQ_BROKER_URL": f"{REDIS}/{self.redis_db}",
            "INFERQ_STORAGE_URL": f"s3://{bucket}/bench",
            "INFERQ_S3_ENDPOINT_URL": endpoint,
            "INFERQ_DATA_DIR": str(self.work / "data"),
            "INFERQ_RATE_LIMIT_PER_MINUTE": "0",
            "INFERQ_MAX_LIVE_JOBS_PER_TENANT": "0",
            **self.extra_env,
        }
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        self.cli(["db", "upgrade"])
        self.key = self.cli(["keys", "create", "--tenant", "bench"]).strip()

    def cli(self, args: list[str]) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "inferq.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(f"inferq {' '.join(args)} failed: {out.stderr[-2000:]}")
        return out.stdout

    def serve(self, threads: int = 16) -> str:
        port = free_port()
        self._spawn("serve", ["serve", "--port", str(port), "--threads", str(threads)], self.env, cli=True)
        self.url = f"http://127.0.0.1:{port}"
        self._wait_http(f"{self.url}/readyz", "serve")
        return self.url

    def worker(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = self._spawn(
            name,
            ["worker", "--gpus", "none", "--name", f"{name}@bench"],
            {**self.env, **(env or {})},
            cli=True,
        )
        deadline = time.monotonic() + 180
        while "ready." not in self.log(name):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{self.log(name)[-3000:]}")
            time.sleep(0.2)
        return proc

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str], *, cli: bool = False
    ) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "inferq.cli", *args] if cli else args
        with (self.work / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name] = proc
        return proc

    def _wait_http(self, url: str, name: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log(name)[-3000:]}")
            try:
                if httpx.get(url, timeout=3).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} not up at {url}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        import psycopg
        import redis
        from sqlalchemy import make_url

        if self.redis_db is not None:
            client = redis.Redis.from_url(REDIS, db=0)
            redis.Redis.from_url(REDIS, db=self.redis_db).flushdb()
            if client.get(f"{CLAIM_PREFIX}{self.redis_db}") == self.token.encode():
                client.delete(f"{CLAIM_PREFIX}{self.redis_db}")
            self.redis_db = None
        admin = make_url(ADMIN_PG).set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        except psycopg.Error as e:
            print(f"could not drop {self.db_name}: {e}", file=sys.stderr)
