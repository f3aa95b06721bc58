"""The Python client and the client CLI commands against a small fake of the HTTP API.

The fake is a real HTTP server (Flask under werkzeug, on a free port, in a thread) that speaks just
the docs/API.md shapes the client uses; the real API is tested elsewhere.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from flask import Flask, Response, request
from werkzeug.serving import make_server

from inferq.cli.client_commands import register_client_commands
from inferq.client import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    Client,
    ConflictError,
    FileObject,
    InvalidRequestError,
    Job,
    NotFoundError,
    UnavailableError,
    WaitTimeout,
    error_from_response,
)
from inferq.progress import (
    ProgressBar,
    RateMeter,
    eta_seconds,
    format_duration,
    format_rate,
    render_progress,
)

API_KEY = "iq_test_key"
CREATED = "2024-05-01T12:00:00Z"
RESULT_LINES = 3000  # about 2 MB: several download chunks


# The fake API ---------------------------------------------------------------------------------


def api_error(status: int, code: str, message: str, field_name: str | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "field": field_name}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def as_json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


@dataclass
class FakeJob:
    data: dict[str, Any]
    # Statuses the job moves through, one per GET; the last one stays.
    script: list[str]
    polls: int = 0


@dataclass
class FakeApi:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    job_bodies: list[dict[str, Any]] = field(default_factory=list)
    unavailable_gets: int = 0  # answer this many GETs of a job with 503 first

    def add_job(self, script: list[str], total: int = 1000, **extra: Any) -> str:
        job_id = f"job_{len(self.jobs) + 1:04d}"
        self.jobs[job_id] = FakeJob(
            data={
                "id": job_id,
                "type": "predict",
                "task": "embedding",
                "status": script[0],
                "model": "minilm-l6",
                "input_file": "file_0001",
                "created_at": CREATED,
                "started_at": None,
                "finished_at": None,
                "expires_at": "2024-05-02T12:00:00Z",
                "progress": {"total": total, "completed": 0, "failed": 0},
                "output_file": None,
                "error_file": None,
                "result_model": None,
                "metrics": None,
                "error": None,
                "metadata": {},
                **extra,
            },
            script=script,
        )
        return job_id

    def advance(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        step = min(job.polls, len(job.script) - 1)
        job.polls += 1
        status = job.script[step]
        data = job.data
        data["status"] = status
        total = data["progress"]["total"]
        if status == "running":
            data["progress"] = {"total": total, "completed": total // 2 - 3, "failed": 3}
            data["started_at"] = CREATED
        elif status == "succeeded":
            data["progress"] = {"total": total, "completed": total - 4, "failed": 4}
            data.update(output_file="file_out", error_file="file_err", finished_at=CREATED)
        elif status == "failed":
            data["error"] = {"code": "model_error", "message": "the worker ran out of memory"}
            data["finished_at"] = CREATED
        elif status in ("cancelled", "expired"):
            data["finished_at"] = CREATED
        return data

    def app(self) -> Flask:
        app = Flask("fake-inferq")

        @app.before_request
        def check_auth() -> Response | None:
            self.requests.append((request.method, request.path))
            if request.path.startswith("/v1") and request.headers.get("Authorization") != f"Bearer {API_KEY}":
                return api_error(401, "unauthorized", "missing or unknown API key")
            return None

        @app.get("/healthz")
        def healthz() -> Response:
            return as_json({"status": "ok"})

        @app.get("/v1/models")
        def models() -> Response:
            return as_json({"data": [{"name": "minilm-l6", "task": "embedding"}], "has_more": False})

        @app.post("/v1/files")
        def upload() -> Response:
            if "file" not in request.files:
                return api_error(400, "invalid_request", "form field 'file' is missing", "file")
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
            self.contents[file_id] = content
            return as_json(self.files[file_id], 201)

        @app.get("/v1/files/<file_id>")
        def get_file(file_id: str) -> Response:
            if file_id not in self.files:
                return api_error(404, "not_found", f"no file {file_id}")
            return as_json(self.files[file_id])

        @app.get("/v1/files/<file_id>/content")
        def file_content(file_id: str) -> Response:
            if file_id not in self.contents:
                return api_error(404, "not_found", f"no file {file_id}")
            return Response(self.contents[file_id], mimetype="application/jsonl")

        @app.post("/v1/jobs")
        def create_job() -> Response:
            body = request.get_json(force=True)
            self.job_bodies.append(body)
            if body.get("model") != "minilm-l6":
                return api_error(400, "invalid_request", f"unknown model {body.get('model')!r}", "model")
            if body.get("input_file") not in self.files:
                return api_error(404, "not_found", "no such input file", "input_file")
            outcome = (body.get("metadata") or {}).get("outcome", "succeeded")
            job_id = self.add_job(["queued", "running", outcome], metadata=body.get("metadata") or {})
            return as_json(self.jobs[job_id].data, 202)

        @app.get("/v1/jobs")
        def list_jobs() -> Response:
            data = [job.data for job in reversed(self.jobs.values())]
            wanted = request.args.get("status")
            if wanted:
                data = [d for d in data if d["status"] == wanted]
            limit = int(request.args.get("limit", 100))
            return as_json({"data": data[:limit], "has_more": len(data) > limit, "next_cursor": None})

        @app.get("/v1/jobs/<job_id>")
        def get_job(job_id: str) -> Response:
            if self.unavailable_gets > 0:
                self.unavailable_gets -= 1
                return api_error(503, "unavailable", "the database is not reachable")
            if job_id not in self.jobs:
                return api_error(404, "not_found", f"no job {job_id}")
            return as_json(self.advance(job_id))

        @app.post("/v1/jobs/<job_id>/cancel")
        def cancel(job_id: str) -> Response:
            if job_id not in self.jobs:
                return api_error(404, "not_found", f"no job {job_id}")
            data = self.jobs[job_id].data
            if data["status"] in ("succeeded", "failed", "cancelled", "expired"):
                return api_error(409, "conflict", f"job is already {data['status']}")
            data["status"] = "cancelling"
            self.jobs[job_id].script = ["cancelling", "cancelled"]
            self.jobs[job_id].polls = 0
            return as_json(data, 202)

        @app.get("/v1/jobs/<job_id>/events")
        def events(job_id: str) -> Response:
            if job_id not in self.jobs:
                return api_error(404, "not_found", f"no job {job_id}")
            log = [
                {"at": CREATED, "type": "status", "status": "queued"},
                {"at": CREATED, "type": "status", "status": "running", "worker": "inferq-0@host"},
            ]
            return as_json({"data": log, "has_more": False, "next_cursor": None})

        @app.get("/v1/jobs/<job_id>/results")
        def results(job_id: str) -> Response:
            if job_id not in self.jobs:
                return api_error(404, "not_found", f"no job {job_id}")
            return Response(result_lines(), mimetype="application/jsonl")

        @app.get("/v1/jobs/<job_id>/errors")
        def errors(job_id: str) -> Response:
            if job_id not in self.jobs:
                return api_error(404, "not_found", f"no job {job_id}")
            return Response(ERROR_BODY, mimetype="application/jsonl")

        @app.get("/broken")
        def broken() -> Response:
            return Response("<html>Bad Gateway</html>", status=502, mimetype="text/html")

        return app


def result_lines() -> Iterator[bytes]:
    for i in range(RESULT_LINES):
        vector = [round((i * 31 + k) % 97 / 97, 6) for k in range(64)]
        yield (json.dumps({"id": f"s{i:04d}", "embedding": vector}) + "\n").encode()


def all_results() -> bytes:
    return b"".join(result_lines())


ERROR_BODY = (
    b'{"id":"s0309","line":309,"error":{"code":"invalid_json","message":"line is not JSON"}}\n'
    b'{"id":"s1215","line":1215,"error":{"code":"invalid_field","message":"text must be a string"}}\n'
)


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
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, API_KEY, timeout=10, backoff=0.01) as c:
        yield c


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "sentences.jsonl"
    path.write_text('{"id": "a", "text": "One."}\n{"id": "b", "text": "Two."}\n', encoding="utf-8")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Client ---------------------------------------------------------------------------------------


def test_upload_returns_a_typed_file_object(client: Client, server: Server, input_file: Path) -> None:
    # given a local JSONL file
    # when it is uploaded
    uploaded = client.upload(input_file)
    # then the server got its bytes and the client returns a FileObject
    assert isinstance(uploaded, FileObject)
    assert uploaded.id.startswith("file_")
    assert uploaded.filename == "sentences.jsonl"
    assert uploaded.bytes == input_file.stat().st_size
    assert uploaded.purpose == "input"
    assert uploaded.records == 2
    assert server.api.contents[uploaded.id] == input_file.read_bytes()


def test_submit_file_uploads_then_submits_a_predict_job(
    client: Client, server: Server, input_file: Path
) -> None:
    # given a file and job options
    # when it is submitted in one call
    job = client.submit_file(
        input_file, task="embedding", model="minilm-l6", params={"max_length": 128}, priority=3
    )
    # then a predict job over the uploaded file is created with only the given fields
    assert isinstance(job, Job)
    assert job.status == "queued"
    body = server.api.job_bodies[-1]
    assert body == {
        "type": "predict",
        "task": "embedding",
        "model": "minilm-l6",
        "input_file": "file_0001",
        "params": {"max_length": 128},
        "priority": 3,
    }


def test_get_parses_every_job_field(client: Client, server: Server) -> None:
    # given a job that has succeeded
    job_id = server.api.add_job(["succeeded"], total=1000)
    # when it is fetched
    job = client.get(job_id)
    # then every docs/API.md field is typed, and the raw JSON is kept
    assert job.id == job_id
    assert (job.type, job.task, job.model, job.input_file) == (
        "predict",
        "embedding",
        "minilm-l6",
        "file_0001",
    )
    assert job.progress.total == 1000
    assert (job.progress.completed, job.progress.failed, job.progress.done) == (996, 4, 1000)
    assert job.progress.fraction == 1.0
    assert (job.output_file, job.error_file) == ("file_out", "file_err")
    assert job.created_at == CREATED and job.finished_at == CREATED
    assert job.error is None and job.metrics is None and job.metadata == {}
    assert job.is_terminal and job.succeeded
    assert job.to_dict()["status"] == "succeeded"


def test_a_running_job_is_not_terminal(client: Client, server: Server) -> None:
    # given a running job
    job_id = server.api.add_job(["running"])
    # when it is fetched
    job = client.get(job_id)
    # then it is neither terminal nor succeeded
    assert not job.is_terminal
    assert not job.succeeded


def test_error_answers_raise_api_errors_with_code_message_and_field(
    client: Client, server: Server, input_file: Path
) -> None:
    # given an uploaded file
    uploaded = client.upload(input_file)
    # when a job names an unknown model
    with pytest.raises(ApiError) as caught:
        client.submit(task="embedding", model="nope", input_file=uploaded.id)
    # then the error's shape is parsed into a typed error
    error = caught.value
    assert isinstance(error, InvalidRequestError)
    assert (error.status, error.code, error.field) == (400, "invalid_request", "model")
    assert "unknown model" in error.message
    assert str(error).startswith("invalid_request: unknown model")


def test_unknown_ids_raise_not_found(client: Client) -> None:
    # given no job with this id
    # when it is fetched
    with pytest.raises(NotFoundError) as caught:
        client.get("job_missing")
    # then the status and code come from the answer
    assert caught.value.status == 404
    assert caught.value.code == "not_found"


def test_a_wrong_key_raises_authentication_error(server: Server) -> None:
    # given a client with a key the server does not know
    with Client(server.url, "iq_wrong") as wrong:
        # when it calls the API
        with pytest.raises(AuthenticationError) as caught:
            wrong.list_jobs()
    # then the 401 is typed
    assert caught.value.status == 401


def test_an_answer_that_is_not_json_still_gives_an_api_error() -> None:
    # given an HTML error page from a proxy
    # when it is turned into an error
    error = error_from_response(502, b"<html>Bad Gateway</html>\n")
    # then status and a made-up code say what happened
    assert (error.status, error.code) == (502, "http_502")
    assert "Bad Gateway" in error.message


def test_an_unreachable_server_raises_api_connection_error_chained() -> None:
    # given nothing listening on the port
    with Client(f"http://127.0.0.1:{closed_port()}", API_KEY, backoff=0.01) as c:
        # when a call is made
        with pytest.raises(ApiConnectionError) as caught:
            c.health()
    # then the transport error is the cause
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert caught.value.code == "connection_error"


def test_gets_are_retried_on_503(client: Client, server: Server) -> None:
    # given a job and a server that answers 503 twice
    job_id = server.api.add_job(["running"])
    server.api.unavailable_gets = 2
    # when the job is fetched
    job = client.get(job_id)
    # then the third try succeeds
    assert job.id == job_id
    assert server.api.requests.count(("GET", f"/v1/jobs/{job_id}")) == 3


def test_gets_give_up_after_three_tries(client: Client, server: Server) -> None:
    # given a server that stays unavailable
    job_id = server.api.add_job(["running"])
    server.api.unavailable_gets = 10
    # when the job is fetched
    with pytest.raises(UnavailableError) as caught:
        client.get(job_id)
    # then the 503 surfaces after three tries
    assert caught.value.status == 503
    assert server.api.requests.count(("GET", f"/v1/jobs/{job_id}")) == 3


def test_wait_returns_the_terminal_job_and_reports_each_poll(client: Client, server: Server) -> None:
    # given a job that runs, then succeeds
    job_id = server.api.add_job(["queued", "running", "succeeded"])
    seen: list[str] = []
    # when waiting for it
    job = client.wait(job_id, poll=0.01, on_progress=lambda j: seen.append(j.status))
    # then it comes back terminal and every poll was reported
    assert job.succeeded
    assert seen == ["queued", "running", "succeeded"]


def test_wait_times_out_with_the_last_job_seen(client: Client, server: Server) -> None:
    # given a job that never ends
    job_id = server.api.add_job(["running"])
    # when waiting for less time than it takes
    with pytest.raises(WaitTimeout) as caught:
        client.wait(job_id, poll=0.05, timeout=0.2)
    # then the error carries the job as last seen
    assert caught.value.job.status == "running"


def test_download_streams_results_to_a_file(client: Client, server: Server, tmp_path: Path) -> None:
    # given a job whose results are bigger than one chunk
    job_id = server.api.add_job(["succeeded"])
    expected = all_results()
    assert len(expected) > 1024 * 1024
    # when they are downloaded into a folder that does not exist yet
    target = tmp_path / "out" / "embeddings.jsonl"
    written = client.download(job_id, target)
    # then the file holds exactly the served bytes, and no partial file is left
    assert written == target
    assert target.read_bytes() == expected
    assert list(target.parent.iterdir()) == [target]


def test_download_errors_writes_the_error_file(client: Client, server: Server, tmp_path: Path) -> None:
    # given a job with two bad records
    job_id = server.api.add_job(["succeeded"])
    # when its errors are downloaded
    target = client.download(job_id, tmp_path / "errors.jsonl", errors=True)
    # then the error file is written as served
    assert target.read_bytes() == ERROR_BODY


def test_download_of_a_missing_job_raises_and_leaves_no_file(client: Client, tmp_path: Path) -> None:
    # given no such job
    target = tmp_path / "x.jsonl"
    # when downloading its results
    with pytest.raises(NotFoundError):
        client.download("job_missing", target)
    # then nothing was written
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_iter_results_streams_decoded_lines(client: Client, server: Server) -> None:
    # given a finished job
    job_id = server.api.add_job(["succeeded"])
    # when iterating over its results
    records = list(client.iter_results(job_id))
    # then every line comes back decoded, in order
    assert len(records) == RESULT_LINES
    assert records[0]["id"] == "s0000" and records[-1]["id"] == f"s{RESULT_LINES - 1:04d}"
    assert len(records[0]["embedding"]) == 64


def test_cancel_then_cancel_again_after_it_ended(client: Client, server: Server) -> None:
    # given a running job
    job_id = server.api.add_job(["running"])
    # when it is cancelled
    job = client.cancel(job_id)
    # then it is cancelling, then cancelled
    assert job.status == "cancelling"
    assert client.wait(job_id, poll=0.01).status == "cancelled"
    # and cancelling a terminal job is a conflict
    with pytest.raises(ConflictError):
        client.cancel(job_id)


def test_list_events_models_health_and_files(client: Client, server: Server, input_file: Path) -> None:
    # given one uploaded file and two jobs
    uploaded = client.upload(input_file)
    first = server.api.add_job(["running"])
    second = server.api.add_job(["queued"])
    # when reading the listings
    page = client.list_jobs(limit=10)
    events = client.events(first)
    # then each comes back in its shape
    assert [job.id for job in page.data] == [second, first]
    assert page.has_more is False and page.next_cursor is None
    assert [e["status"] for e in events] == ["queued", "running"]
    assert client.models()[0]["name"] == "minilm-l6"
    assert client.health() == {"status": "ok"}
    assert client.file(uploaded.id) == uploaded


def test_file_content_streams_a_file_to_disk(
    client: Client, server: Server, input_file: Path, tmp_path: Path
) -> None:
    # given an uploaded file
    uploaded = client.upload(input_file)
    # when its content is fetched
    copy = client.file_content(uploaded.id, tmp_path / "copy.jsonl")
    # then it is byte for byte the upload
    assert copy.read_bytes() == input_file.read_bytes()


# CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("inferq")
    register_client_commands(group)
    return group


@pytest.fixture
def runner(server: Server) -> CliRunner:
    return CliRunner(env={"INFERQ_URL": server.url, "INFERQ_API_KEY": API_KEY})


def test_submit_prints_the_job_id_alone(
    cli: click.Group, runner: CliRunner, server: Server, input_file: Path
) -> None:
    # given a file
    # when submitting it with params of several types
    result = runner.invoke(
        cli,
        [
            "submit",
            str(input_file),
            "--task",
            "embedding",
            "--model",
            "minilm-l6",
            "--param",
            "max_length=128",
            "--param",
            "normalize=false",
            "--param",
            "output_format=jsonl",
            "--priority",
            "5",
        ],
    )
    # then stdout is the job id and nothing else
    assert result.exit_code == 0, result.output
    assert result.stdout == "job_0001\n"
    # and the params kept their types
    body = server.api.job_bodies[-1]
    assert body["params"] == {"max_length": 128, "normalize": False, "output_format": "jsonl"}
    assert body["priority"] == 5


def test_submit_rejects_a_param_without_a_value(
    cli: click.Group, runner: CliRunner, input_file: Path
) -> None:
    # given a malformed --param
    # when submitting
    result = runner.invoke(
        cli, ["submit", str(input_file), "--task", "embedding", "--model", "minilm-l6", "--param", "oops"]
    )
    # then it is a usage error
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr


def test_wait_exits_0_when_the_job_succeeds(cli: click.Group, runner: CliRunner, server: Server) -> None:
    # given a job that will succeed
    job_id = server.api.add_job(["queued", "running", "succeeded"])
    # when waiting for it
    result = runner.invoke(cli, ["wait", job_id, "--poll", "0.01"])
    # then it exits 0, with the progress on stderr and the summary on stdout
    assert result.exit_code == 0, result.output
    assert f"{job_id} succeeded: 996 completed, 4 failed of 1,000 records" in result.stdout
    assert "running" in result.stderr and "records" in result.stderr


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "expired"])
def test_wait_exits_1_when_the_job_does_not_succeed(
    cli: click.Group, runner: CliRunner, server: Server, outcome: str
) -> None:
    # given a job that ends without success
    job_id = server.api.add_job(["running", outcome])
    # when waiting for it
    result = runner.invoke(cli, ["wait", job_id, "--poll", "0.01"])
    # then the exit status says so
    assert result.exit_code == 1
    assert f"{job_id} {outcome}" in result.stdout


def test_wait_shows_why_a_job_failed(cli: click.Group, runner: CliRunner, server: Server) -> None:
    # given a job that fails
    job_id = server.api.add_job(["running", "failed"])
    # when waiting quietly
    result = runner.invoke(cli, ["wait", job_id, "--poll", "0.01", "--quiet"])
    # then the summary carries the job's error and no progress bar was drawn
    assert result.exit_code == 1
    assert "error: model_error: the worker ran out of memory" in result.stdout
    assert "[" not in result.stderr


def test_submit_wait_keeps_stdout_to_the_id_and_exits_1_on_failure(
    cli: click.Group, runner: CliRunner, input_file: Path
) -> None:
    # given a job the server will fail
    args = ["submit", str(input_file), "--task", "embedding", "--model", "minilm-l6"]
    # when submitting and waiting
    result = runner.invoke(cli, [*args, "--metadata", "outcome=failed", "--wait", "--poll", "0.01"])
    # then stdout is still only the id, the summary is on stderr, and the exit status is 1
    assert result.exit_code == 1
    assert result.stdout == "job_0001\n"
    assert "job_0001 failed" in result.stderr


def test_status_prints_json_or_one_line(cli: click.Group, runner: CliRunner, server: Server) -> None:
    # given a running job
    job_id = server.api.add_job(["running"])
    # when asking for its status, in full then short
    full = runner.invoke(cli, ["status", job_id])
    short = runner.invoke(cli, ["status", job_id, "--short"])
    # then the first is the job's JSON and the second one line
    assert full.exit_code == 0 and short.exit_code == 0
    assert json.loads(full.stdout)["status"] == "running"
    assert short.stdout == f"{job_id} running embedding minilm-l6 500/1,000 (3 failed)\n"


def test_download_writes_results_and_errors(
    cli: click.Group, runner: CliRunner, server: Server, tmp_path: Path
) -> None:
    # given a finished job
    job_id = server.api.add_job(["succeeded"])
    out, errors = tmp_path / "results.jsonl", tmp_path / "errors.jsonl"
    # when downloading both files
    result = runner.invoke(cli, ["download", job_id, "-o", str(out), "--errors-to", str(errors)])
    # then both are on disk
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == all_results()
    assert errors.read_bytes() == ERROR_BODY
    assert f"results: {out}" in result.stderr


def test_api_errors_print_code_and_message_and_exit_1(cli: click.Group, runner: CliRunner) -> None:
    # given no such job
    # when asking for it
    result = runner.invoke(cli, ["status", "job_missing"])
    # then one error line, no traceback
    assert result.exit_code == 1
    assert result.stderr == "error: not_found: no job job_missing\n"
    assert "Traceback" not in result.output


def test_a_missing_api_key_is_an_error(cli: click.Group, server: Server) -> None:
    # given no key in the environment or options
    runner = CliRunner(env={"INFERQ_URL": server.url, "INFERQ_API_KEY": None})
    # when running a command
    result = runner.invoke(cli, ["jobs"])
    # then it says what is missing
    assert result.exit_code == 1
    assert result.stderr.startswith("error: missing_api_key:")


def test_an_unreachable_server_is_an_error(cli: click.Group) -> None:
    # given a URL nothing listens on, passed as an option
    url = f"http://127.0.0.1:{closed_port()}"
    # when running a command
    result = CliRunner().invoke(cli, ["status", "job_1", "--url", url, "--api-key", API_KEY])
    # then the connection error is reported on one line
    assert result.exit_code == 1
    assert result.stderr.startswith("error: connection_error: cannot reach")


def test_cancel_jobs_and_events(cli: click.Group, runner: CliRunner, server: Server) -> None:
    # given two jobs
    first = server.api.add_job(["running"])
    second = server.api.add_job(["queued"])
    # when cancelling one, listing, and reading events
    cancelled = runner.invoke(cli, ["cancel", first])
    listed = runner.invoke(cli, ["jobs"])
    events = runner.invoke(cli, ["events", first])
    again = runner.invoke(cli, ["cancel", "job_missing"])
    # then each prints its result
    assert cancelled.exit_code == 0 and cancelled.stdout.startswith(f"{first} cancelling")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [second, first]
    assert [json.loads(line)["status"] for line in events.stdout.splitlines()] == ["queued", "running"]
    assert again.exit_code == 1 and again.stderr.startswith("error: not_found:")


# Progress -------------------------------------------------------------------------------------


def test_render_progress_shows_counts_rate_and_eta() -> None:
    # given 626 of 1,500 records done at 85.3 records/s
    # when the line is rendered
    line = render_progress(status="running", completed=600, failed=26, total=1500, rate=85.3, width=10)
    # then it shows the bar, percent, counts, rate and the time left (874 / 85.3 = 10 s)
    assert line == "running    [####------]  41.7%  626/1,500 records, 26 failed  85.3 rec/s  ETA 0:10"


def test_render_progress_without_a_total_or_rate() -> None:
    # given a job whose input is not counted yet
    # when the line is rendered
    line = render_progress(status="queued", completed=0, failed=0, total=None, rate=None, width=4)
    # then unknowns are shown as such
    assert line == "queued     [----]     ?%  0/? records  -- rec/s  ETA --:--"


def test_duration_rate_and_eta_formatting() -> None:
    # given / when / then
    assert format_duration(7) == "0:07"
    assert format_duration(754.4) == "12:34"
    assert format_duration(3723) == "1:02:03"
    assert format_duration(None) == "--:--"
    assert format_rate(3.14159) == "3.1 rec/s"
    assert format_rate(12345.6) == "12,346 rec/s"
    assert eta_seconds(500, 1000, 50.0) == 10.0
    assert eta_seconds(1000, 1000, None) == 0.0
    assert eta_seconds(10, 1000, 0.0) is None
    assert eta_seconds(10, None, 5.0) is None


def test_rate_meter_averages_over_its_window() -> None:
    # given a meter with a 10 s window
    meter = RateMeter(window=10)
    # when observations come in, first slow then fast
    assert meter.rate() is None
    meter.add(0.0, 0)
    meter.add(5.0, 50)
    assert meter.rate() == 10.0
    meter.add(10.0, 100)
    meter.add(15.0, 600)
    meter.add(20.0, 1100)
    # then the rate spans only the last window
    assert meter.rate() == 100.0


def running(done: int, status: str = "running") -> Job:
    return Job.from_dict(
        {"id": "job_1", "status": status, "progress": {"total": 1000, "completed": done, "failed": 0}}
    )


def test_progress_bar_logs_a_line_every_interval_when_not_a_tty() -> None:
    # given a bar on a pipe, with a fake clock
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar(out, tty=False, interval=5.0, clock=lambda: now[0])
    # when the job is observed every second for 10 seconds, then ends
    for second in range(11):
        now[0] = float(second)
        bar.update(running(second * 50))
    bar.update(running(1000, "succeeded"))
    bar.finish()
    # then one line was written at 0, 5 and 10 s, and one at the end
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert "\r" not in out.getvalue()
    assert "250/1,000 records" in lines[1] and "50.0 rec/s" in lines[1] and "ETA 0:15" in lines[1]
    assert lines[-1].startswith("succeeded")


def test_progress_bar_redraws_in_place_on_a_tty() -> None:
    # given a bar on a terminal
    out = io.StringIO()
    bar = ProgressBar(out, tty=True, clock=lambda: 0.0)
    # when it is updated twice and finished
    bar.update(running(100))
    bar.update(running(200))
    bar.finish()
    # then each update rewrote the same line, and finish ended it
    text = out.getvalue()
    assert text.count("\r") == 2
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "200/1,000 records" in text
