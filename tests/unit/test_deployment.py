"""docker-compose.yml: valid for `docker compose config`, and wired the way the design asks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def load() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_docker_compose_config_validates_the_file() -> None:
    # given: a compose CLI (CI installs one; a laptop without it skips)
    command = compose_command()
    if command is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no `docker compose` or `docker-compose` in CI (.ci/run installs docker-compose)")
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    # when
    out = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, check=False
    )
    # then
    assert out.returncode == 0, out.stderr


def test_redis_never_evicts_and_keeps_an_append_only_file() -> None:
    command = " ".join(load()["services"]["redis"]["command"])
    assert "--maxmemory-policy noeviction" in command and "--appendonly yes" in command


def test_each_gpu_worker_reserves_its_device_and_pins_it() -> None:
    services = load()["services"]
    workers = {name: svc for name, svc in services.items() if name.startswith("worker-gpu")}
    assert workers
    for name, svc in workers.items():
        gpu = name.removeprefix("worker-gpu")
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["device_ids"] == [gpu] and "gpu" in devices[0]["capabilities"]
        assert svc["environment"]["CUDA_VISIBLE_DEVICES"] == gpu


def test_the_stack_has_its_migration_step_beat_flower_and_a_bucket() -> None:
    services = load()["services"]
    assert services["migrate"]["command"] == ["inferq", "db", "upgrade"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--beat" in services["beat"]["command"]
    assert "flower" in services["flower"]["command"]
    assert "mc mb" in " ".join(services["create-bucket"]["command"])


def test_the_api_sends_embeddings_to_the_embedder_service() -> None:
    # given: the services and the environment they share
    services = load()["services"]
    url = services["api"]["environment"]["INFERQ_EMBEDDINGS_URL"]
    command = services["embedder"]["command"]
    # then: the embedder service runs `inferq serve-embeddings` on the host and port the API names
    assert command[:2] == ["inferq", "serve-embeddings"]
    port = command[command.index("--port") + 1]
    assert url == f"http://embedder:{port}" and command[command.index("--host") + 1] == "0.0.0.0"
