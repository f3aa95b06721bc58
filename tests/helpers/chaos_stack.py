"""One deployment for one chaos test (`Stack`): its own servers (`tests/helpers/chaos_servers.py`), the
schema migrated, a bucket, an API key, an in-process API client (``create_app``), and `ChaosProcesses`
(the e2e `Processes`, plus killing and stopping single ones) to start ``inferq worker``/``inferq serve``
processes. `build_stack` makes one; the ``make_stack`` fixture (``tests/chaos/conftest.py``) stops its
processes after the test. `check_job` (``tests/helpers/chaos_checks.py``) is the one assertion every
test makes; ``tests/helpers/chaos_faults.py`` holds the ways to hurt it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update

from inferq.api.app import create_app
from inferq.shared.db import session_scope
from inferq.shared.migrate import upgrade
from inferq.shared.models import Job, JobEvent, JobPart
from inferq.shared.settings import Settings
from inferq.shared.storage import S3Storage, get_storage
from inferq.shared.tenants import create_tenant_key
from tests.e2e.inputs import real_sentences
from tests.helpers.chaos_servers import MotoServer, PostgresServer, RedisServer, Servers, wait_until
from tests.helpers.processes import ROOT, Processes

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def owner_pid(part: JobPart) -> int:
    """The pid in a lease owner (`host:pid[:gpuN]`, see worker/lease.py worker_name)."""
    assert part.lease_owner is not None
    return int(part.lease_owner.split(":")[1])


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
        texts = real_sentences(records)
        assert len(texts) == records
        rows = [{"id": f"r{i:05d}", "text": text} for i, text in enumerate(texts)]
        return self.submit_rows(rows, **{"task": "embedding", "model": "minilm-l6", **body})

    def submit_rows(self, rows: list[dict[str, Any]], **body: Any) -> Submitted:
        """Upload `rows` (each with its `id`) as a JSONL input file and submit a predict job on it with
        `body` (task, model, …); both must be accepted."""
        path = self.tmp_path / f"input-{uuid.uuid4().hex[:8]}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
        r = self.http.post(
            "/v1/files",
            headers=self.headers,
            data={"purpose": "input", "file": (path.open("rb"), path.name)},
            content_type="multipart/form-data",
        )
        assert r.status_code == 201, r.get_json()
        job = {"type": "predict", **body, "input_file": r.get_json()["id"]}
        r = self.http.post("/v1/jobs", headers=self.headers, json=job)
        assert r.status_code == 202, r.get_json()
        return Submitted(job_id=r.get_json()["id"], ids=[str(row["id"]) for row in rows], path=path)

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


def build_stack(servers: Servers, procs: ChaosProcesses, tmp_path: Path, **env_overrides: str) -> Stack:
    """Own Redis, Postgres and moto servers, migrated, with a bucket and a key of tenant ``chaos``."""
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
    return Stack(
        redis=redis,
        pg=pg,
        moto=moto,
        env=env,
        settings=settings,
        procs=procs,
        http=app.test_client(),
        headers={"Authorization": f"Bearer {key}"},
        api_key=key,
        tmp_path=tmp_path,
    )
