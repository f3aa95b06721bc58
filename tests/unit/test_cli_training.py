"""`inferq train`, `inferq evaluate` and `inferq models list|show|delete` against a small fake of the API.

As in test_client.py, the fake is a real HTTP server (Flask under werkzeug, on a free port, in a thread)
that speaks the docs/API.md shapes these commands use: uploads, train and evaluate job bodies, a job that
moves queued → running → succeeded with training metrics, and the model registry with a version that a
live job still uses. The real API and worker are tested in tests/integration.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from flask import Flask, Response, request
from werkzeug.serving import make_server

from inferq.cli.training_commands import register_training_commands

API_KEY = "iq_test_key"
CREATED = "2024-05-01T12:00:00Z"
TRAIN_METRICS = {
    "epoch": 2,
    "epochs": 2,
    "train_loss": 0.3121,
    "validation_loss": 0.287,
    "accuracy": 0.904,
    "macro_f1": 0.903,
}
EVAL_METRICS = {
    "accuracy": 0.875,
    "macro_f1": 0.8701,
    "per_class": {
        "neg": {"precision": 0.9, "recall": 0.85, "f1": 0.874, "support": 20},
        "pos": {"precision": 0.85, "recall": 0.9, "f1": 0.874, "support": 20},
    },
    "confusion_matrix": {"labels": ["neg", "pos"], "matrix": [[17, 3], [2, 18]]},
}


def api_error(status: int, code: str, message: str, field_name: str | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "field": field_name}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def as_json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def version(name: str, number: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{name}:{number}",
        "object": "model.version",
        "name": name,
        "version": number,
        "task": "text-classification",
        "status": "ready",
        "labels": ["neg", "pos"],
        "metrics": {"accuracy": 0.9, "macro_f1": 0.89},
        "config": {},
        "base_model": "minilm-l6",
        "hyperparameters": {"epochs": 2},
        "created_by_job": f"job_train_{number}",
        "created_at": CREATED,
        "weights_sha256": "0" * 64,
        **extra,
    }


@dataclass
class FakeApi:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    job_bodies: list[dict[str, Any]] = field(default_factory=list)
    # name → versions; "sentiment:2" is used by a live job and cannot be deleted.
    models: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"sentiment": [version("sentiment", 1), version("sentiment", 2)]}
    )
    in_use: set[str] = field(default_factory=lambda: {"sentiment:2"})

    def job(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = f"job_{len(self.jobs) + 1:04d}"
        outcome = "failed" if body.get("model_name") == "doomed" else "succeeded"
        self.jobs[job_id] = {
            "id": job_id,
            "type": body["type"],
            "task": body["task"],
            "status": "queued",
            "model": body.get("model", body.get("base_model")),
            "input_file": body.get("input_file", body.get("training_file")),
            "created_at": CREATED,
            "started_at": None,
            "finished_at": None,
            "expires_at": "2024-05-02T12:00:00Z",
            "progress": {"total": 40, "completed": 0, "failed": 0},
            "output_file": None,
            "error_file": None,
            "result_model": None,
            "metrics": None,
            "error": None,
            "metadata": {},
            "params": {"outcome": outcome},
        }
        return self.jobs[job_id]

    def advance(self, job_id: str) -> dict[str, Any]:
        """queued, then running at epoch 1, then the outcome."""
        data = self.jobs[job_id]
        step = self.polls.get(job_id, 0)
        self.polls[job_id] = step + 1
        training = data["type"] == "train"
        if step == 0:
            data.update(status="running", started_at=CREATED)
            data["progress"] = {"total": 40, "completed": 20, "failed": 0}
            if training:
                data["metrics"] = {**TRAIN_METRICS, "epoch": 1}
        elif step >= 1 and data["params"]["outcome"] == "failed":
            data.update(status="failed", finished_at=CREATED)
            data["error"] = {"code": "too_few_labels", "message": "the training file has only one label"}
        elif step >= 1:
            data.update(
                status="succeeded", finished_at=CREATED, output_file="file_out", error_file="file_err"
            )
            data["progress"] = {"total": 40, "completed": 40, "failed": 0}
            data["metrics"] = TRAIN_METRICS if training else EVAL_METRICS
            if training:
                data["result_model"] = "sentiment:3"
        return data

    def app(self) -> Flask:
        app = Flask("fake-inferq-training")

        @app.before_request
        def check_auth() -> Response | None:
            if request.headers.get("Authorization") != f"Bearer {API_KEY}":
                return api_error(401, "unauthorized", "missing or unknown API key")
            return None

        @app.post("/v1/files")
        def upload() -> Response:
            upload = request.files["file"]
            content = upload.read()
            file_id = f"file_{len(self.files) + 1:04d}"
            self.files[file_id] = {
                "id": file_id,
                "filename": upload.filename,
                "bytes": len(content),
                "purpose": request.form.get("purpose", "input"),
                "format": "jsonl",
                "records": content.count(b"\n"),
                "sha256": "0" * 64,
                "created_at": CREATED,
            }
            return as_json(self.files[file_id], 201)

        @app.post("/v1/jobs")
        def create_job() -> Response:
            body = request.get_json(force=True)
            self.job_bodies.append(body)
            for key in ("training_file", "validation_file", "input_file"):
                if body.get(key) is not None and body[key] not in self.files:
                    return api_error(404, "not_found", f"no file {body[key]}", key)
            if body["type"] == "evaluate" and body["model"].split(":")[0] not in self.models:
                return api_error(404, "model_not_found", f"model {body['model']!r} does not exist", "model")
            return as_json(self.job(body), 202)

        @app.get("/v1/jobs/<job_id>")
        def get_job(job_id: str) -> Response:
            if job_id not in self.jobs:
                return api_error(404, "not_found", f"no job {job_id}")
            return as_json(self.advance(job_id))

        @app.get("/v1/models")
        def list_models() -> Response:
            builtin = {
                "id": "minilm-l6",
                "name": "minilm-l6",
                "builtin": True,
                "task": "embedding",
                "latest_version": 1,
                "versions": [version("minilm-l6", 1, metrics=None, task="embedding")],
            }
            mine = [
                {
                    "id": name,
                    "name": name,
                    "builtin": False,
                    "task": "text-classification",
                    "latest_version": versions[-1]["version"],
                    "versions": versions,
                }
                for name, versions in self.models.items()
            ]
            return as_json({"data": [builtin, *mine], "has_more": False, "next_cursor": None})

        @app.get("/v1/models/<ref>")
        def get_model(ref: str) -> Response:
            name, _, number = ref.partition(":")
            if name not in self.models:
                return api_error(404, "model_not_found", f"model {ref!r} does not exist", "model")
            versions = self.models[name]
            if number:
                found = [v for v in versions if str(v["version"]) == number]
                if not found:
                    return api_error(404, "model_not_found", f"model {ref!r} does not exist", "model")
                return as_json(found[0])
            return as_json(
                {"id": name, "name": name, "latest_version": versions[-1]["version"], "versions": versions}
            )

        @app.delete("/v1/models/<ref>")
        def delete_model(ref: str) -> Response:
            name, _, number = ref.partition(":")
            if not number:
                return api_error(
                    400, "version_required", f"name the version to delete: {name}:<version>", "model"
                )
            versions = self.models.get(name, [])
            if not any(str(v["version"]) == number for v in versions):
                return api_error(404, "model_not_found", f"model {ref!r} does not exist", "model")
            if ref in self.in_use:
                return api_error(
                    409, "model_in_use", f"model {ref} is used by a job that has not finished", "model"
                )
            self.models[name] = [v for v in versions if str(v["version"]) != number]
            return as_json({"id": ref, "object": "model", "deleted": True})

        return app


@dataclass
class Server:
    api: FakeApi
    url: str


@pytest.fixture
def server() -> Iterator[Server]:
    api = FakeApi()
    http = make_server("127.0.0.1", 0, api.app(), threaded=True)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield Server(api, f"http://127.0.0.1:{http.server_port}")
    finally:
        http.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("inferq")
    models = click.Group("models")
    group.add_command(models)
    register_training_commands(group, models)
    return group


@pytest.fixture
def runner(server: Server) -> CliRunner:
    return CliRunner(env={"INFERQ_URL": server.url, "INFERQ_API_KEY": API_KEY})


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.jsonl"
    rows = [{"id": f"r{i}", "text": f"review {i}", "label": "pos" if i % 2 else "neg"} for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# inferq train ---------------------------------------------------------------------------------


def test_train_uploads_the_files_and_prints_the_job_id_alone(
    cli: click.Group, runner: CliRunner, server: Server, labelled: Path, tmp_path: Path
) -> None:
    # given a training file and a validation file
    validation = tmp_path / "validation.jsonl"
    validation.write_text('{"id": "v1", "text": "fine", "label": "pos"}\n', encoding="utf-8")
    # when training with a base model and typed hyperparameters
    result = runner.invoke(
        cli,
        [
            "train",
            str(labelled),
            "--task",
            "text-classification",
            "--name",
            "sentiment",
            "--base",
            "minilm-l6",
            "--validation",
            str(validation),
            "--hp",
            "epochs=2",
            "--hp",
            "learning_rate=3e-5",
        ],
    )
    # then stdout is the job id and nothing else
    assert result.exit_code == 0, result.output
    assert result.stdout == "job_0001\n"
    # and both files were uploaded for training, and the body says what was asked
    assert [f["purpose"] for f in server.api.files.values()] == ["training", "training"]
    assert server.api.job_bodies == [
        {
            "type": "train",
            "task": "text-classification",
            "training_file": "file_0001",
            "model_name": "sentiment",
            "base_model": "minilm-l6",
            "validation_file": "file_0002",
            "hyperparameters": {"epochs": 2, "learning_rate": 3e-5},
        }
    ]


@pytest.mark.parametrize(
    ("base_args", "expected"),
    [(["--base", "scratch"], {"base_model": None}), ([], {})],
    ids=["scratch-is-null", "omitted-is-the-default"],
)
def test_train_base_scratch_sends_null_and_no_base_sends_nothing(
    cli: click.Group,
    runner: CliRunner,
    server: Server,
    labelled: Path,
    base_args: list[str],
    expected: dict[str, Any],
) -> None:
    # given a training file
    # when training with --base scratch, or without --base
    result = runner.invoke(
        cli, ["train", str(labelled), "--task", "text-classification", "--name", "zh", *base_args]
    )
    # then base_model is null (from scratch), or absent (the task's default base)
    assert result.exit_code == 0, result.output
    body = server.api.job_bodies[-1]
    assert {k: v for k, v in body.items() if k == "base_model"} == expected
    assert "hyperparameters" not in body and "validation_file" not in body


def test_train_wait_shows_epochs_and_metrics_and_exits_0(
    cli: click.Group, runner: CliRunner, labelled: Path
) -> None:
    # given a train job that succeeds
    # when training with --wait
    result = runner.invoke(
        cli,
        [
            "train",
            str(labelled),
            "--task",
            "text-classification",
            "--name",
            "sentiment",
            "--wait",
            "--poll",
            "0.01",
        ],
    )
    # then the job id comes first, the progress shows the epoch, and the summary names the model and metrics
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "job_0001"
    assert "epoch 1/2" in result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert "job_0001 succeeded" in summary and "model sentiment:3" in summary
    assert "epoch 2/2" in summary and "acc 0.904" in summary and "f1 0.903" in summary


def test_train_wait_exits_1_with_the_reason_when_the_job_fails(
    cli: click.Group, runner: CliRunner, labelled: Path
) -> None:
    # given a train job that fails (one label)
    # when training with --wait
    result = runner.invoke(
        cli,
        [
            "train",
            str(labelled),
            "--task",
            "text-classification",
            "--name",
            "doomed",
            "--wait",
            "--poll",
            "0.01",
        ],
    )
    # then it exits 1 and says why
    assert result.exit_code == 1
    assert "job_0001 failed" in result.stderr
    assert "too_few_labels: the training file has only one label" in result.stderr


def test_train_refuses_a_bad_task_and_a_hyperparameter_without_a_value(
    cli: click.Group, runner: CliRunner, server: Server, labelled: Path
) -> None:
    # given a task that cannot be trained, and a malformed --hp
    # when training with each
    bad_task = runner.invoke(cli, ["train", str(labelled), "--task", "embedding", "--name", "x"])
    bad_hp = runner.invoke(
        cli, ["train", str(labelled), "--task", "text-classification", "--name", "x", "--hp", "epochs"]
    )
    # then both are usage errors and no job is created
    assert bad_task.exit_code == 2 and "embedding" in bad_task.stderr
    assert bad_hp.exit_code == 2 and "KEY=VALUE" in bad_hp.stderr
    assert server.api.job_bodies == []


# inferq evaluate ------------------------------------------------------------------------------


def test_evaluate_wait_prints_the_job_id_then_the_metrics_as_json(
    cli: click.Group, runner: CliRunner, server: Server, labelled: Path
) -> None:
    # given a labelled file and a registered model
    # when evaluating it with --wait
    result = runner.invoke(
        cli,
        [
            "evaluate",
            str(labelled),
            "--task",
            "text-classification",
            "--model",
            "sentiment:1",
            "--wait",
            "--poll",
            "0.01",
        ],
    )
    # then stdout is the job id, then the metrics JSON (accuracy, macro-F1, per class, confusion matrix)
    assert result.exit_code == 0, result.output
    job_id, _, metrics = result.stdout.partition("\n")
    assert job_id == "job_0001"
    assert json.loads(metrics) == EVAL_METRICS
    # and the file went up as an input file for an evaluate job
    assert server.api.files["file_0001"]["purpose"] == "input"
    assert server.api.job_bodies == [
        {"type": "evaluate", "task": "text-classification", "model": "sentiment:1", "input_file": "file_0001"}
    ]


def test_evaluate_without_wait_prints_only_the_job_id(
    cli: click.Group, runner: CliRunner, labelled: Path
) -> None:
    # given a labelled file
    # when evaluating it without --wait
    result = runner.invoke(
        cli, ["evaluate", str(labelled), "--task", "text-classification", "--model", "sentiment"]
    )
    # then only the id is printed
    assert result.exit_code == 0, result.output
    assert result.stdout == "job_0001\n"


def test_evaluate_an_unknown_model_is_one_error_line(
    cli: click.Group, runner: CliRunner, labelled: Path
) -> None:
    # given no model named "nope"
    # when evaluating with it
    result = runner.invoke(
        cli, ["evaluate", str(labelled), "--task", "text-classification", "--model", "nope"]
    )
    # then one error line, exit 1, no traceback
    assert result.exit_code == 1
    assert result.stderr == "error: model_not_found: model 'nope' does not exist\n"
    assert "Traceback" not in result.output


# inferq models --------------------------------------------------------------------------------


def test_models_list_shows_builtins_and_tenant_models_with_their_latest_version(
    cli: click.Group, runner: CliRunner
) -> None:
    # given the built-in model and a tenant model with two versions
    # when listing
    result = runner.invoke(cli, ["models", "list"])
    as_json_result = runner.invoke(cli, ["models", "list", "--json"])
    # then one line each: name:latest, task, kind and the latest version's accuracy
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "minilm-l6:1 embedding built-in",
        "sentiment:2 text-classification 2 version(s) accuracy 0.900",
    ]
    # and --json prints the API's objects
    assert [m["name"] for m in json.loads(as_json_result.stdout)] == ["minilm-l6", "sentiment"]


def test_models_show_prints_a_model_or_one_version_as_json(cli: click.Group, runner: CliRunner) -> None:
    # given a model with two versions
    # when showing the model and one version
    model = runner.invoke(cli, ["models", "show", "sentiment"])
    one = runner.invoke(cli, ["models", "show", "sentiment:1"])
    missing = runner.invoke(cli, ["models", "show", "nope"])
    # then the model lists its versions; the version has its labels, metrics and the job that made it
    assert model.exit_code == 0, model.output
    assert [v["id"] for v in json.loads(model.stdout)["versions"]] == ["sentiment:1", "sentiment:2"]
    shown = json.loads(one.stdout)
    assert shown["labels"] == ["neg", "pos"] and shown["created_by_job"] == "job_train_1"
    assert missing.exit_code == 1 and missing.stderr.startswith("error: model_not_found:")


def test_models_delete_removes_a_version_and_refuses_one_in_use(
    cli: click.Group, runner: CliRunner, server: Server
) -> None:
    # given sentiment:1 unused and sentiment:2 used by a live job
    # when deleting each, and a bare name
    deleted = runner.invoke(cli, ["models", "delete", "sentiment:1"])
    in_use = runner.invoke(cli, ["models", "delete", "sentiment:2"])
    bare = runner.invoke(cli, ["models", "delete", "sentiment"])
    # then the unused one is gone, the one in use stays with a 409 error line, the bare name is refused
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == "deleted sentiment:1\n"
    assert in_use.exit_code == 1
    assert in_use.stderr == "error: model_in_use: model sentiment:2 is used by a job that has not finished\n"
    assert bare.exit_code == 1 and bare.stderr.startswith("error: version_required:")
    assert [v["id"] for v in server.api.models["sentiment"]] == ["sentiment:2"]
