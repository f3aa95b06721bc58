"""Server commands of the CLI: up, serve, serve-embeddings, worker, db upgrade, keys, models import.

They need the service's libraries (`pip install 'inferq[server]'`, or `[worker]` for the workers); the bare
install has only the client half, and these commands then say which extra to install.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from inferq.shared.settings import SettingsError, get_settings

log = logging.getLogger(__name__)


def _setup_logging(level: str = "INFO") -> None:
    from inferq.shared.logs import configure_logging

    configure_logging(level, json_logs=get_settings().log_json)


def _settings_or_exit() -> None:
    try:
        get_settings()
    except SettingsError as e:
        raise click.ClickException(str(e)) from e


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations up to the newest."""
    from inferq.shared.migrate import upgrade

    _settings_or_exit()
    upgrade()
    click.echo("database is up to date", err=True)


@click.group("keys")
def keys_group() -> None:
    """API keys."""


@keys_group.command("create")
@click.option("--tenant", required=True, help="Tenant name; created if it does not exist.")
def keys_create(tenant: str) -> None:
    """Create an API key for TENANT and print it alone on stdout (it is stored only as a hash)."""
    from inferq.shared.db import session_scope
    from inferq.shared.migrate import upgrade
    from inferq.shared.tenants import create_tenant_key

    _settings_or_exit()
    upgrade()
    with session_scope() as session:
        key = create_tenant_key(session, tenant)
    click.echo(key)


@keys_group.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke an API key (the key itself or its prefix)."""
    from inferq.shared.db import session_scope
    from inferq.shared.tenants import revoke_key

    _settings_or_exit()
    with session_scope() as session:
        n = revoke_key(session, key)
    if not n:
        raise click.ClickException("no such key")
    click.echo("revoked", err=True)


@click.group("models")
def models_group() -> None:
    """Models in the registry."""


@models_group.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name; the version counts up per tenant and name.")
@click.option(
    "--task", required=True, type=click.Choice(["text-classification", "embedding", "image-classification"])
)
@click.option("--tenant", required=True, help="Tenant that owns the model.")
def models_import(folder: Path, name: str, task: str, tenant: str) -> None:
    """Register a local Hugging Face folder (safetensors weights only) as NAME:N and print NAME:N."""
    from sqlalchemy import select

    from inferq.shared.db import session_scope
    from inferq.shared.errors import InferqError
    from inferq.shared.models import Tenant
    from inferq.shared.registry import register_folder
    from inferq.shared.storage import get_storage

    _settings_or_exit()
    with session_scope() as session:
        tenant_id = session.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar_one_or_none()
        if tenant_id is None:
            raise click.ClickException(f"no tenant named {tenant!r} (create one with `inferq keys create`)")
        try:
            resolved = register_folder(session, get_storage(), tenant_id, name, folder, task)
        except InferqError as e:
            raise click.ClickException(e.message) from e
    click.echo(resolved.ref)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=16, show_default=True, type=int)
@click.option(
    "--connection-limit",
    default=2000,
    show_default=True,
    type=int,
    help="Open connections served at once (pollers keep theirs open); more wait in the backlog.",
)
def serve(host: str, port: int, threads: int, connection_limit: int) -> None:
    """Run the HTTP API (waitress)."""
    import waitress

    from inferq.api.app import create_app
    from inferq.api.startup import prepare_to_serve
    from inferq.api.uploads import return_large_buffers_to_os

    _settings_or_exit()
    _setup_logging()
    settings = get_settings()
    app = create_app(settings)
    return_large_buffers_to_os()  # RSS flat across large uploads and downloads
    prepare_to_serve(app)  # no full garbage collections of the start-up heap under load (api/startup.py)
    log.info("inferq API on http://%s:%d", host, port)
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        # waitress accepts only 100 connections by default: a 101st keep-alive poller waits in the
        # kernel's queue for seconds. poll() instead of select() lifts the 1024-descriptor ceiling.
        connection_limit=connection_limit,
        backlog=2048,
        asyncore_use_poll=True,
        max_request_body_size=settings.max_upload_bytes + 1024 * 1024,
        ident="inferq",
        clear_untrusted_proxy_headers=True,
    )


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


@click.command("serve-embeddings")
@click.option("--host", default=None, help="Default: the host of INFERQ_EMBEDDINGS_URL.")
@click.option("--port", default=None, type=int, help="Default: the port of INFERQ_EMBEDDINGS_URL.")
@click.option("--threads", default=16, show_default=True, type=int, help="Requests waiting at once.")
def serve_embeddings(host: str | None, port: int | None, threads: int) -> None:
    """Run the embedder that answers the API's POST /v1/embeddings (models loaded here, not in the API)."""
    from inferq.worker.embedder_server import serve as serve_embedder

    _settings_or_exit()
    _setup_logging()
    settings = get_settings()
    default_host, default_port = _host_port(settings.embeddings_url)
    serve_embedder(settings, host or default_host, port or default_port, threads)


@click.command("worker")
@click.option("--gpus", default="all", show_default=True, help="all | none | comma-separated GPU ids.")
@click.option("--queues", default="control,inference,training", show_default=True)
@click.option("--name", default=None, help="Worker name (default: inferq-<pid>@host).")
@click.option(
    "--concurrency", default=1, show_default=True, type=int, help="Processes per worker (with GPUs: per GPU)."
)
@click.option(
    "--beat/--no-beat",
    default=False,
    help="Also run Celery beat: the retention sweep (run exactly one). Every worker reconciles without it.",
)
@click.option("--loglevel", default="INFO", show_default=True)
def worker(gpus: str, queues: str, name: str | None, concurrency: int, beat: bool, loglevel: str) -> None:
    """Run workers: one process per GPU with CUDA_VISIBLE_DEVICES pinned, or CPU workers without GPUs."""
    from inferq.worker.launcher import detect_gpu_count, gpu_ids, launch_gpu_workers

    _settings_or_exit()
    _setup_logging(loglevel)
    try:
        ids = gpu_ids(gpus, detect_gpu_count(os.environ))
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    if ids and "CUDA_VISIBLE_DEVICES" not in os.environ:
        sys.exit(launch_gpu_workers(ids, queues, name or "inferq", beat, concurrency))
    from inferq.worker.main import run_worker

    run_worker(
        get_settings(),
        queues=tuple(q for q in queues.split(",") if q),
        name=name,
        concurrency=concurrency,
        beat=beat,
        loglevel=loglevel,
    )


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="CPU/GPU worker processes.")
@click.option(
    "--embeddings-port",
    default=None,
    type=int,
    help="The embedder's port (default: INFERQ_EMBEDDINGS_URL's if set, else --port + 1).",
)
def up(host: str, port: int, workers: int, embeddings_port: int | None) -> None:
    """Run the API, the embedder and workers together in the foreground (Ctrl-C stops all)."""
    from inferq.shared.migrate import upgrade
    from inferq.worker.launcher import Supervisor

    _settings_or_exit()
    _setup_logging()
    settings = get_settings()
    upgrade(settings)
    env = dict(os.environ)
    env.setdefault("INFERQ_DATA_DIR", str(settings.data_dir))
    if "INFERQ_TORCH_THREADS" not in env:
        env["INFERQ_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    if embeddings_port is not None or "INFERQ_EMBEDDINGS_URL" not in env:
        env["INFERQ_EMBEDDINGS_URL"] = f"http://127.0.0.1:{embeddings_port or port + 1}"
    base = [sys.executable, "-m", "inferq.cli"]
    commands: list[tuple[list[str], dict[str, str]]] = [
        ([*base, "serve", "--host", host, "--port", str(port)], env),
        ([*base, "serve-embeddings"], env),
    ]
    for i in range(workers):
        cmd = [
            *base,
            "worker",
            "--gpus",
            "none",
            "--name",
            f"inferq-{i}@%h",
            "--queues",
            "control,inference,training",
        ]
        if i == 0:
            cmd.append("--beat")
        commands.append((cmd, {**env, "INFERQ_WORKER_INDEX": str(i)}))
    click.echo(
        f"inferq up: API on http://{host}:{port}, {workers} worker(s), data in {settings.data_dir}\n"
        f"  embedder {env['INFERQ_EMBEDDINGS_URL']}\n"
        f"  database {settings.database_url}\n  broker   {settings.broker_url}\n"
        f"  storage  {settings.storage_url}\n"
        "  create a key: inferq keys create --tenant NAME    (Ctrl-C stops everything)",
        err=True,
    )
    sys.exit(Supervisor(commands).run())


def needs_extra(extra: str, command: click.Command) -> None:
    """Make `command` answer a missing service library with the extra to install, not a traceback."""
    callback = command.callback
    assert callback is not None

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] == "inferq":
                raise
            raise click.ClickException(
                f"`inferq {command.name}` needs the {extra} extra ({e.name} is not installed): "
                f"pip install 'inferq[{extra}]'"
            ) from e

    command.callback = run


EXTRAS: list[tuple[str, Callable[[], list[click.Command]]]] = [
    ("server", lambda: [*db_group.commands.values(), *keys_group.commands.values(), serve]),
    ("worker", lambda: [models_group.commands["import"], worker, serve_embeddings, up]),
]


def register_server_commands(group: click.Group) -> None:
    for extra, commands in EXTRAS:
        for command in commands():
            needs_extra(extra, command)
    for command in (db_group, keys_group, models_group, serve, serve_embeddings, worker, up):
        group.add_command(command)
