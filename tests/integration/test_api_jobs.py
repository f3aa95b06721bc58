"""`/v1/jobs` against Postgres, Redis and the moto S3 server: a job is validated whole, committed,
then sent to the `control` queue; reading, listing, events, cancel and result downloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select

from inferq.shared import jobs
from inferq.shared.db import session_scope
from inferq.shared.ids import new_id
from inferq.shared.models import File, Job, JobEvent, utcnow
from inferq.shared.queue import QUEUE_CONTROL, TASK_FINALIZE, TASK_PLAN
from inferq.shared.settings import Settings
from inferq.shared.states import JobStatus
from inferq.shared.storage import get_storage
from tests.helpers.api_client import ApiClient
from tests.helpers.ports import free_port

pytestmark = pytest.mark.integration

JSONL = b"".join(b'{"id": "r%d", "text": "sentence %d"}\n' % (i, i) for i in range(10))
CSV_WITHOUT_TEXT = b"id,body\n1,hello\n2,world\n"


def control_messages(settings: Settings) -> list[dict[str, Any]]:
    """The messages waiting on the `control` queue, oldest first (kombu's Redis transport keeps a list
    per queue, pushing at the head and consuming from the tail)."""
    client = redis.Redis.from_url(settings.broker_url)
    try:
        return [json.loads(raw) for raw in reversed(client.lrange(QUEUE_CONTROL, 0, -1))]
    finally:
        client.close()


def task_of(message: dict[str, Any]) -> tuple[str, str]:
    headers = message["headers"]
    return headers["task"], headers["argsrepr"]


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def tenant(api: ApiClient) -> dict[str, str]:
    return api.headers_for("acme")


@pytest.fixture
def input_file(api: ApiClient, tenant: dict[str, str]) -> str:
    r = api.upload(tenant, JSONL, filename="sentences.jsonl")
    assert r.status_code == 201
    return str(r.get_json()["id"])


def embed(input_file: str, **extra: Any) -> dict[str, Any]:
    return {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": input_file, **extra}


# ---- submit --------------------------------------------------------------------------------------


def test_submit_commits_the_job_with_a_state_event_then_sends_it_to_control(
    api: ApiClient, tenant: dict[str, str], input_file: str
) -> None:
    # when an embedding job is submitted
    r = api.submit(tenant, **embed(input_file, metadata={"run": "7"}, priority=3, params={"normalize": True}))

    # then it is accepted as a queued job with the resolved model
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["id"].startswith("job_")
    assert (job["type"], job["task"], job["status"], job["model"]) == (
        "predict",
        "embedding",
        "queued",
        "minilm-l6:1",
    )
    assert job["input_file"] == input_file
    assert job["progress"] == {"total": 10, "completed": 0, "failed": 0}  # known from the upload scan
    assert (job["output_file"], job["error_file"], job["error"], job["result_model"]) == (
        None,
        None,
        None,
        None,
    )
    assert job["metadata"] == {"run": "7"}
    assert job["params"] == {"normalize": True}
    assert job["priority"] == 3
    assert parse_ts(job["expires_at"]) - parse_ts(job["created_at"]) == timedelta(hours=24)
    # and the row and its first event are in the database
    with session_scope(api.settings) as session:
        row = session.get(Job, job["id"])
        assert row is not None and row.status == "queued"
        events = (
            session.execute(select(JobEvent).where(JobEvent.job_id == job["id"]).order_by(JobEvent.id))
            .scalars()
            .all()
        )
        assert [(e.kind, e.to_status) for e in events] == [("state", "queued")]
    # and exactly one plan message for it waits on the control queue
    messages = control_messages(api.settings)
    assert [task_of(m) for m in messages] == [(TASK_PLAN, repr([job["id"]]))]


def test_completion_window_sets_expires_at(api: ApiClient, tenant: dict[str, str], input_file: str) -> None:
    # when a job is submitted with a 90 minute window
    job = api.submit(tenant, **embed(input_file, completion_window="90m")).get_json()

    # then it expires 90 minutes after it was created
    assert parse_ts(job["expires_at"]) - parse_ts(job["created_at"]) == timedelta(minutes=90)


def test_a_broker_outage_does_not_fail_the_submit(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given an app whose broker is a closed port
    api = make_client(s3_settings.with_overrides(broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    headers = api.headers_for()
    file_id = api.upload(headers, JSONL).get_json()["id"]

    # when a job is submitted
    r = api.submit(headers, **embed(file_id))

    # then it is accepted and committed (the reconciler sends it later)
    assert r.status_code == 202, r.get_json()
    with session_scope(api.settings) as session:
        assert session.get(Job, r.get_json()["id"]) is not None


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ([1, 2], 400, "invalid_json", None),
        ("just a string", 400, "invalid_json", None),
        ({}, 400, "field_required", "type"),
        ({"type": "train"}, 400, "unknown_field", "input_file"),
        ({"type": "evaluate", "params": {"normalize": "yes"}}, 400, "invalid_value", "task"),
        ({"type": "sorcery"}, 400, "invalid_value", "type"),
        ({"status": "succeeded"}, 400, "forbidden_field", "status"),
        ({"id": "job_mine"}, 400, "forbidden_field", "id"),
        ({"tenant": "other"}, 400, "forbidden_field", "tenant"),
        ({"colour": "red"}, 400, "unknown_field", "colour"),
        ({"task": None}, 400, "field_required", "task"),
        ({"task": "translation"}, 400, "invalid_value", "task"),
        ({"model": 7}, 400, "invalid_type", "model"),
        ({"model": "no-such-model"}, 404, "model_not_found", "model"),
        ({"model": "minilm-l6:2"}, 404, "model_not_found", "model"),
        ({"model": "bad ref!"}, 400, "invalid_request", "model"),
        ({"task": "text-classification"}, 400, "model_task_mismatch", "model"),
        ({"input_file": "file_00000000000000000000000000"}, 404, "file_not_found", "input_file"),
        ({"input_file": "file_\x00"}, 404, "file_not_found", "input_file"),
        ({"input_file": 12}, 400, "invalid_type", "input_file"),
        ({"params": {"batch_tokens": 10}}, 400, "invalid_value", "params.batch_tokens"),
        ({"params": {"batch_tokens": 2_000_000}}, 400, "invalid_value", "params.batch_tokens"),
        ({"params": {"max_length": 0}}, 400, "invalid_value", "params.max_length"),
        ({"params": {"max_length": 8193}}, 400, "invalid_value", "params.max_length"),
        ({"params": {"max_length": 12.5}}, 400, "invalid_type", "params.max_length"),
        ({"params": {"top_k": True}}, 400, "invalid_type", "params.top_k"),
        ({"params": {"normalize": 1}}, 400, "invalid_type", "params.normalize"),
        ({"params": {"output_format": "parquet"}}, 400, "unsupported_output_format", "params.output_format"),
        ({"params": {"output_format": "xml"}}, 400, "invalid_value", "params.output_format"),
        ({"params": {"precision": "fp8"}}, 400, "invalid_value", "params.precision"),
        ({"params": {"temperature": 0.1}}, 400, "unknown_field", "params.temperature"),
        ({"params": [1]}, 400, "invalid_type", "params"),
        ({"priority": True}, 400, "invalid_type", "priority"),
        ({"priority": 10}, 400, "invalid_value", "priority"),
        ({"priority": -1}, 400, "invalid_value", "priority"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, 400, "invalid_value", "metadata"),
        ({"metadata": {"n": 1}}, 400, "invalid_type", "metadata"),
        ({"metadata": "x"}, 400, "invalid_type", "metadata"),
        ({"webhook_url": "ftp://example.com/hook"}, 400, "invalid_value", "webhook_url"),
        ({"webhook_url": "not a url"}, 400, "invalid_value", "webhook_url"),
        ({"webhook_url": "https://example.com/a b"}, 400, "invalid_value", "webhook_url"),
        ({"completion_window": "tomorrow"}, 400, "invalid_value", "completion_window"),
        ({"completion_window": "10s"}, 400, "invalid_value", "completion_window"),
    ],
)
def test_invalid_submissions_are_refused_before_anything_is_created(
    api: ApiClient,
    tenant: dict[str, str],
    input_file: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    # given a valid body with one thing wrong (dict bodies are merged over a valid one)
    payload = {**embed(input_file), **body} if isinstance(body, dict) and body else body
    if body == {}:
        payload = {k: v for k, v in embed(input_file).items() if k != "type"}

    # when it is submitted
    r = api.client.post("/v1/jobs", headers=tenant, json=payload)

    # then it is refused with the status, code and field, and no job or message exists
    assert r.status_code == status, r.get_json()
    error = r.get_json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert error["message"]
    assert api.client.get("/v1/jobs", headers=tenant).get_json()["data"] == []
    assert control_messages(api.settings) == []


def test_malformed_json_is_400_invalid_json(api: ApiClient, tenant: dict[str, str]) -> None:
    # when the body is not JSON
    r = api.client.post(
        "/v1/jobs", headers=tenant, data=b'{"type": "predict",', content_type="application/json"
    )

    # then it is a 400 invalid_json
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "invalid_json"


def test_the_input_file_must_be_the_tenants_of_purpose_input_with_the_task_field(
    api: ApiClient, tenant: dict[str, str]
) -> None:
    # given another tenant's file, a training file, and a CSV without a text column
    theirs = api.upload(api.headers_for("someone-else"), JSONL).get_json()["id"]
    training = api.upload(tenant, JSONL, purpose="training").get_json()["id"]
    no_text = api.upload(tenant, CSV_WITHOUT_TEXT, filename="notext.csv").get_json()["id"]
    no_text_jsonl = api.upload(
        tenant, b'{"body": "x"}\n{"title": "y"}\n', filename="notext.jsonl"
    ).get_json()["id"]

    # when embedding jobs name them
    answers = {
        name: api.submit(tenant, **embed(file_id)).get_json()
        for name, file_id in {
            "theirs": theirs,
            "training": training,
            "no_text": no_text,
            "no_text_jsonl": no_text_jsonl,
        }.items()
    }

    # then each is refused for what it is, and no job exists
    assert answers["theirs"]["error"]["code"] == "file_not_found"
    assert answers["training"]["error"]["code"] == "invalid_file_purpose"
    assert answers["no_text"]["error"] | {"message": ""} == {
        "code": "missing_field",
        "field": "input_file",
        "message": "",
    }
    assert answers["no_text_jsonl"]["error"]["code"] == "missing_field"
    assert api.client.get("/v1/jobs", headers=tenant).get_json()["data"] == []


def test_the_same_idempotency_key_and_body_return_the_first_job(
    api: ApiClient, tenant: dict[str, str], input_file: str
) -> None:
    # given a job submitted with an idempotency key
    headers = {**tenant, "Idempotency-Key": "nightly-2026-01-01"}
    first = api.submit(headers, **embed(input_file))
    assert first.status_code == 202

    # when the same request is retried
    again = api.submit(headers, **embed(input_file))

    # then the same job comes back, and only one job and one message exist
    assert again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(api.client.get("/v1/jobs", headers=tenant).get_json()["data"]) == 1
    assert len(control_messages(api.settings)) == 1

    # and the same key with a different body is a conflict
    other = api.submit(headers, **embed(input_file, priority=5))
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "idempotency_conflict"
    assert len(api.client.get("/v1/jobs", headers=tenant).get_json()["data"]) == 1


# ---- reading -------------------------------------------------------------------------------------


def test_jobs_list_newest_first_with_filters_and_pages(
    api: ApiClient, tenant: dict[str, str], input_file: str
) -> None:
    # given three jobs, the first cancelled
    ids = [api.submit(tenant, **embed(input_file)).get_json()["id"] for _ in range(3)]
    assert api.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=tenant).status_code == 202

    # when they are listed
    everything = api.client.get("/v1/jobs", headers=tenant).get_json()
    page1 = api.client.get("/v1/jobs?limit=2", headers=tenant).get_json()
    page2 = api.client.get(f"/v1/jobs?limit=2&cursor={page1['next_cursor']}", headers=tenant).get_json()
    queued = api.client.get("/v1/jobs?status=queued", headers=tenant).get_json()
    either = api.client.get("/v1/jobs?status=queued,cancelling&type=predict", headers=tenant).get_json()

    # then they come newest first, page by page, and filtered
    assert [j["id"] for j in everything["data"]] == ids[::-1]
    assert [j["id"] for j in page1["data"] + page2["data"]] == ids[::-1]
    assert (page1["has_more"], page2["has_more"], page2["next_cursor"]) == (True, False, None)
    assert [j["id"] for j in queued["data"]] == ids[:0:-1]
    assert len(either["data"]) == 3
    for bad in ("status=done", "type=magic", "limit=-1"):
        r = api.client.get(f"/v1/jobs?{bad}", headers=tenant)
        assert r.status_code == 400, bad


def test_events_are_the_ordered_log(api: ApiClient, tenant: dict[str, str], input_file: str) -> None:
    # given a job that was submitted and then cancelled
    job_id = api.submit(tenant, **embed(input_file)).get_json()["id"]
    api.client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant)

    # when its events are read, all at once and one per page
    events = api.client.get(f"/v1/jobs/{job_id}/events", headers=tenant).get_json()
    first = api.client.get(f"/v1/jobs/{job_id}/events?limit=1", headers=tenant).get_json()
    second = api.client.get(
        f"/v1/jobs/{job_id}/events?limit=1&cursor={first['next_cursor']}", headers=tenant
    ).get_json()

    # then they are the state changes, oldest first
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in events["data"]] == [
        ("state", None, "queued"),
        ("state", "queued", "cancelling"),
    ]
    assert set(events["data"][0]) >= {
        "id",
        "created_at",
        "kind",
        "from_status",
        "to_status",
        "message",
        "data",
    }
    assert first["data"] + second["data"] == events["data"]
    assert api.client.get(f"/v1/jobs/{job_id}/events?cursor=abc", headers=tenant).status_code == 400


def test_another_tenants_job_is_404_everywhere_and_never_listed(
    api: ApiClient, tenant: dict[str, str], input_file: str
) -> None:
    # given a job of tenant A
    job_id = api.submit(tenant, **embed(input_file)).get_json()["id"]
    other = api.headers_for("tenant-b")

    # when tenant B reaches for it
    answers = [
        api.client.get(f"/v1/jobs/{job_id}", headers=other),
        api.client.get(f"/v1/jobs/{job_id}/events", headers=other),
        api.client.post(f"/v1/jobs/{job_id}/cancel", headers=other),
        api.client.get(f"/v1/jobs/{job_id}/results", headers=other),
        api.client.get(f"/v1/jobs/{job_id}/errors", headers=other),
        api.client.get("/v1/jobs/job_00000000000000000000000000", headers=other),
    ]

    # then every answer is the same 404, B's list is empty, and A's job is untouched
    for r in answers:
        assert r.status_code == 404
        assert r.get_json()["error"]["code"] == "job_not_found"
    assert api.client.get("/v1/jobs", headers=other).get_json()["data"] == []
    assert api.client.get(f"/v1/jobs/{job_id}", headers=tenant).get_json()["status"] == "queued"


# ---- cancel --------------------------------------------------------------------------------------


def test_cancel_moves_a_live_job_to_cancelling_and_sends_finalize(
    api: ApiClient, tenant: dict[str, str], input_file: str
) -> None:
    # given a queued job
    job_id = api.submit(tenant, **embed(input_file)).get_json()["id"]

    # when it is cancelled twice
    first = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant)
    second = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant)

    # then it is cancelling, and one finalize message was sent after the plan message
    assert first.status_code == second.status_code == 202
    assert first.get_json()["status"] == second.get_json()["status"] == "cancelling"
    assert [task_of(m)[0] for m in control_messages(api.settings)] == [TASK_PLAN, TASK_FINALIZE]


def test_a_finished_job_cannot_be_cancelled(api: ApiClient, tenant: dict[str, str], input_file: str) -> None:
    # given a job that ended cancelled
    job_id = api.submit(tenant, **embed(input_file)).get_json()["id"]
    api.client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant)
    with session_scope(api.settings) as session:
        assert jobs.transition(session, job_id, JobStatus.CANCELLED) == "cancelling"

    # when it is cancelled again
    r = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant)

    # then it is a 409 and the job stays cancelled
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "job_not_cancellable"
    assert api.client.get(f"/v1/jobs/{job_id}", headers=tenant).get_json()["status"] == "cancelled"


# ---- results -------------------------------------------------------------------------------------


def finish_job(settings: Settings, job_id: str, tenant_id: str, output: bytes, errors: bytes) -> None:
    """Do what the finalizer does at the end: store the two files, register them, mark succeeded."""
    storage = get_storage(settings)
    file_ids = {}
    with session_scope(settings) as session:
        for purpose, data in (("output", output), ("errors", errors)):
            file_id = new_id("file")
            key = f"t/{tenant_id}/jobs/{job_id}/{purpose}.jsonl"
            storage.put_bytes(key, data)
            session.add(
                File(
                    id=file_id,
                    tenant_id=tenant_id,
                    filename=f"{job_id}-{purpose}.jsonl",
                    purpose=purpose,
                    format="jsonl",
                    bytes=len(data),
                    records=data.count(b"\n"),
                    fields=[],
                    sha256="0" * 64,
                    storage_key=key,
                    job_id=job_id,
                    created_at=utcnow(),
                )
            )
            file_ids[purpose] = file_id
        for status in (JobStatus.RUNNING, JobStatus.FINALIZING):
            assert jobs.transition(session, job_id, status) is not None
        assert jobs.transition(
            session,
            job_id,
            JobStatus.SUCCEEDED,
            output_file_id=file_ids["output"],
            error_file_id=file_ids["errors"],
        )


def test_results_and_errors_stream_the_job_files_once_it_has_them(
    api: ApiClient, tenant: dict[str, str], input_file: str
) -> None:
    # given a queued job
    job = api.submit(tenant, **embed(input_file)).get_json()

    # when its results are asked for before it has any
    early = [api.client.get(f"/v1/jobs/{job['id']}/{what}", headers=tenant) for what in ("results", "errors")]

    # then both are 409 job_not_finished
    for r in early:
        assert r.status_code == 409
        assert r.get_json()["error"]["code"] == "job_not_finished"

    # and once it succeeded without bad records
    with session_scope(api.settings) as session:
        tenant_id = session.execute(select(Job.tenant_id).where(Job.id == job["id"])).scalar_one()
    output = b'{"id": "r0", "embedding": [0.1, 0.2]}\n{"id": "r1", "embedding": [0.3, 0.4]}\n'
    finish_job(api.settings, job["id"], tenant_id, output, b"")
    results = api.client.get(f"/v1/jobs/{job['id']}/results", headers=tenant)
    errors = api.client.get(f"/v1/jobs/{job['id']}/errors", headers=tenant)

    # then the results are the output file's bytes and the error file is empty
    assert results.status_code == 200
    assert results.headers["Content-Type"] == "application/jsonl; charset=utf-8"
    assert results.data == output
    assert errors.status_code == 200
    assert errors.headers["Content-Type"] == "application/jsonl; charset=utf-8"
    assert errors.data == b""
    finished = api.client.get(f"/v1/jobs/{job['id']}", headers=tenant).get_json()
    assert finished["status"] == "succeeded"
    assert finished["output_file"] and finished["error_file"]
    assert finished["finished_at"].endswith("Z")
