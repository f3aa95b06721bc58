"""Privacy by default: retention deletes inputs, parts and results from storage for real, `DELETE` does it
at once, and S3 objects can be written with server-side encryption.

Jobs run through HTTP and the worker's own stages (planner, runner, finalizer driven in-process) on
Postgres, Redis and moto S3; the proof of deletion is a listing of the bucket itself.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from inferq.api.app import create_app
from inferq.shared import keys
from inferq.shared.db import session_scope
from inferq.shared.models import File, Job, ResultCache, Tenant, utcnow
from inferq.shared.settings import Settings
from inferq.shared.storage import S3Storage, get_storage
from inferq.shared.tenants import create_tenant_key
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.retention import sweep
from inferq.worker.runner import part_ids_of, run_part
from tests.integration.test_api_jobs import finish_job

pytestmark = pytest.mark.integration

RECORDS = (
    b"".join(b'{"id": "r%d", "text": "sentence number %d"}\n' % (i, i) for i in range(12)) + b"{broken\n"
)


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def kept_for(resource: dict[str, Any]) -> timedelta:
    """How long after its creation a file or job is deleted."""
    return parse_ts(resource["delete_after"]) - parse_ts(resource["created_at"])


def about(delta: timedelta, days: int) -> bool:
    return abs(delta - timedelta(days=days)) < timedelta(seconds=1)


@pytest.fixture
def make_worker_settings(make_worker_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """The shared factory, with parts of 5 records unless a test passes its own."""
    return functools.partial(make_worker_settings, INFERQ_PART_RECORDS="5")


class Actor:
    """A tenant speaking HTTP to the app."""

    def __init__(self, client: FlaskClient, settings: Settings, name: str) -> None:
        self.client = client
        self.settings = settings
        with session_scope(settings) as session:
            key = create_tenant_key(session, name)
            self.id = session.execute(select(Tenant.id).where(Tenant.name == name)).scalar_one()
        self.headers = {"Authorization": f"Bearer {key}"}

    def upload(self, data: bytes = RECORDS, **form: str) -> Any:
        body: dict[str, Any] = {"purpose": "input", **form, "file": (io.BytesIO(data), "in.jsonl")}
        return self.client.post(
            "/v1/files", headers=self.headers, data=body, content_type="multipart/form-data"
        )

    def submit(self, file_id: str, **extra: Any) -> Any:
        body = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": file_id, **extra}
        return self.client.post("/v1/jobs", headers=self.headers, json=body)

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)

    def delete(self, path: str) -> Any:
        return self.client.delete(path, headers=self.headers)

    def run_job(self, file_id: str, **extra: Any) -> dict[str, Any]:
        """Submit, then plan, run every part and finalize in-process; the job as GET answers it."""
        r = self.submit(file_id, **extra)
        assert r.status_code == 202, r.get_json()
        job_id = r.get_json()["id"]
        plan_job(job_id, self.settings)
        for part_id in part_ids_of(self.settings, job_id):
            assert run_part(part_id, self.settings) == "done"
        assert finalize_job(job_id, self.settings) == "succeeded"
        job = self.get(f"/v1/jobs/{job_id}").get_json()
        assert job["status"] == "succeeded", job
        return dict(job)

    def bucket_keys(self) -> list[str]:
        return bucket_keys(self.settings, keys.tenant_prefix(self.id))


def s3(settings: Settings) -> S3Storage:
    storage = get_storage(settings)
    assert isinstance(storage, S3Storage)
    return storage


def bucket_keys(settings: Settings, tenant_prefix: str = "") -> list[str]:
    """Every key in the bucket under the tenant's prefix, listed from S3 itself (not from SQL)."""
    storage = s3(settings)
    found: list[str] = []
    for page in storage.client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket, Prefix=storage.prefix + tenant_prefix
    ):
        found.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(found)


@pytest.fixture
def tenants(make_worker_settings: Callable[..., Settings]) -> tuple[Actor, Actor]:
    settings = make_worker_settings()
    client = create_app(settings).test_client()
    return Actor(client, settings, "private"), Actor(client, settings, "bystander")


def test_the_sweep_deletes_inputs_parts_and_results_past_their_retention(
    tenants: tuple[Actor, Actor],
) -> None:
    mine, other = tenants
    # given: a file and a job kept 3 days, and another tenant's file and job kept the default 30
    r = mine.upload(retention_days="3")
    assert r.status_code == 201, r.get_json()
    upload = r.get_json()
    assert kept_for(upload) == timedelta(days=3)
    job = mine.run_job(upload["id"], retention_days=3)
    assert about(kept_for(job), 3)
    theirs = other.run_job(other.upload().get_json()["id"])
    assert about(kept_for(theirs), 30)
    # and: the job's output and error files go with it; its events say when
    for file_id in (job["output_file"], job["error_file"]):
        assert mine.get(f"/v1/files/{file_id}").get_json()["delete_after"] == job["delete_after"]
    created = mine.get(f"/v1/jobs/{job['id']}/events").get_json()["data"][0]
    assert created["data"]["delete_after"] == job["delete_after"]
    stored = mine.bucket_keys()
    job_prefix = s3(mine.settings).prefix + keys.job_prefix(mine.id, job["id"])
    assert any(k.endswith(f"files/{upload['id']}") for k in stored)
    assert sum(k.startswith(job_prefix + "parts/") for k in stored) >= 4  # 3 parts: output + error objects
    assert {job_prefix + n for n in ("output.jsonl", "errors.jsonl", "manifest.json")} <= set(stored)
    theirs_before = bucket_keys(mine.settings, keys.tenant_prefix(other.id))
    # and: cached results, one older than the tenant retention (30 days)
    with session_scope(mine.settings) as session:
        session.add_all(
            [
                ResultCache(
                    tenant_id=mine.id, key="a" * 64, result="{}", created_at=utcnow() - timedelta(days=31)
                ),
                ResultCache(tenant_id=mine.id, key="b" * 64, result="{}", created_at=utcnow()),
            ]
        )

    # when: the sweep runs before the time, then after it
    early = sweep(mine.settings, now=utcnow() + timedelta(days=2))
    assert (early.jobs, early.files) == (0, 0) and early.cache_rows == 1
    assert mine.bucket_keys() == stored
    report = sweep(mine.settings, now=utcnow() + timedelta(days=4))

    # then: nothing of the tenant is left in the bucket; the other tenant's objects all remain
    assert (report.jobs, report.files, report.failed) == (1, 1, 0)
    assert report.objects >= len(stored)
    assert mine.bucket_keys() == []
    assert bucket_keys(mine.settings, keys.tenant_prefix(other.id)) == theirs_before
    # and: the job and its files are gone from the API too
    assert mine.get(f"/v1/jobs/{job['id']}").status_code == 404
    for file_id in (upload["id"], job["output_file"], job["error_file"]):
        assert mine.get(f"/v1/files/{file_id}").status_code == 404
    assert other.get(f"/v1/jobs/{theirs['id']}").status_code == 200
    # and: only the fresh cached result remains
    with session_scope(mine.settings) as session:
        assert session.execute(select(ResultCache.key)).scalars().all() == ["b" * 64]


def test_a_file_a_live_job_reads_is_kept_until_the_job_ends(tenants: tuple[Actor, Actor]) -> None:
    mine, _ = tenants
    # given: a file past its retention that a queued job (kept forever) reads
    file_id = mine.upload(retention_days="1").get_json()["id"]
    r = mine.submit(file_id, retention_days=0)
    assert r.status_code == 202 and r.get_json()["delete_after"] is None
    job_id = r.get_json()["id"]
    later = utcnow() + timedelta(days=2)

    # when: the sweep runs while the job is live
    report = sweep(mine.settings, now=later)

    # then: the file stays
    assert (report.files, report.kept_in_use) == (0, 1)
    assert mine.get(f"/v1/files/{file_id}").status_code == 200

    # when: the job ends, and the sweep runs again
    assert mine.client.post(f"/v1/jobs/{job_id}/cancel", headers=mine.headers).status_code == 202
    assert finalize_job(job_id, mine.settings) == "cancelled"
    report = sweep(mine.settings, now=later)

    # then: the input is deleted, the job (kept forever) says so in its events, and its results remain
    assert report.files == 1
    assert mine.get(f"/v1/files/{file_id}").status_code == 404
    events = mine.get(f"/v1/jobs/{job_id}/events").get_json()["data"]
    note = [e for e in events if e["kind"] == "file_deleted"]
    assert len(note) == 1 and note[0]["data"] == {"file": file_id, "reason": "retention"}
    assert not any(k.endswith(f"files/{file_id}") for k in mine.bucket_keys())
    job = mine.get(f"/v1/jobs/{job_id}").get_json()
    assert mine.get(f"/v1/files/{job['output_file']}").status_code == 200


def test_delete_of_a_job_and_its_input_leaves_nothing_in_the_bucket(tenants: tuple[Actor, Actor]) -> None:
    mine, other = tenants
    # given: a finished job (kept forever) over a file kept forever
    file_id = mine.upload(retention_days="0").get_json()["id"]
    job = mine.run_job(file_id, retention_days=0)
    assert job["delete_after"] is None and len(mine.bucket_keys()) > 5

    # when: another tenant tries, then the owner deletes the job
    assert other.delete(f"/v1/jobs/{job['id']}").status_code == 404
    r = mine.delete(f"/v1/jobs/{job['id']}")

    # then: it answers as a file delete does, and every object of the job is gone at once
    assert r.status_code == 200 and r.get_json() == {"id": job["id"], "object": "job", "deleted": True}
    assert mine.bucket_keys() == [s3(mine.settings).prefix + keys.file_key(mine.id, file_id)]
    assert mine.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert mine.get(f"/v1/jobs/{job['id']}/results").status_code == 404
    assert mine.get(f"/v1/files/{job['output_file']}").status_code == 404
    assert mine.delete(f"/v1/jobs/{job['id']}").status_code == 404

    # when: the input file is deleted too
    r = mine.delete(f"/v1/files/{file_id}")

    # then: nothing of the tenant is left
    assert r.status_code == 200 and r.get_json() == {"id": file_id, "object": "file", "deleted": True}
    assert mine.bucket_keys() == []
    with session_scope(mine.settings) as session:
        assert session.execute(select(File.id).where(File.tenant_id == mine.id)).all() == []
        assert session.execute(select(Job.id).where(Job.tenant_id == mine.id)).all() == []


def test_a_live_job_and_its_input_cannot_be_deleted(tenants: tuple[Actor, Actor]) -> None:
    mine, _ = tenants
    # given: a queued job
    file_id = mine.upload().get_json()["id"]
    job_id = mine.submit(file_id).get_json()["id"]

    # when / then: deleting it, or its input, is a conflict, and nothing was deleted
    r = mine.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "job_not_finished"
    r = mine.delete(f"/v1/files/{file_id}")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "file_in_use"
    assert mine.get(f"/v1/jobs/{job_id}").get_json()["status"] == "queued"
    assert any(k.endswith(f"files/{file_id}") for k in mine.bucket_keys())
    # and: the sweep leaves a live job alone even past its time
    with session_scope(mine.settings) as session:
        session.execute(update(Job).where(Job.id == job_id).values(delete_after=utcnow() - timedelta(days=1)))
    assert sweep(mine.settings).jobs == 0
    assert mine.get(f"/v1/jobs/{job_id}").status_code == 200


def test_an_ended_job_a_live_job_needs_is_kept(tenants: tuple[Actor, Actor]) -> None:
    mine, _ = tenants
    # given: an ended job past its time, and a live retry of it
    file_id = mine.upload().get_json()["id"]
    parent = mine.submit(file_id).get_json()["id"]
    finish_job(mine.settings, parent, mine.id, b"", b"")
    child = mine.submit(file_id).get_json()["id"]
    with session_scope(mine.settings) as session:
        session.execute(update(Job).where(Job.id == child).values(parent_job_id=parent))
        session.execute(update(Job).where(Job.id == parent).values(delete_after=utcnow()))

    # when / then: neither DELETE nor the sweep removes it while the retry is live
    r = mine.delete(f"/v1/jobs/{parent}")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "job_in_use"
    report = sweep(mine.settings)
    assert (report.jobs, report.kept_in_use) == (0, 1)
    assert mine.get(f"/v1/jobs/{parent}").status_code == 200

    # when: the retry ends
    mine.client.post(f"/v1/jobs/{child}/cancel", headers=mine.headers)
    assert finalize_job(child, mine.settings) == "cancelled"

    # then: the next sweep deletes the parent
    assert sweep(mine.settings).jobs == 1
    assert mine.get(f"/v1/jobs/{parent}").status_code == 404
    # and: deleting the input now notes it in the events of the job that read it
    assert mine.delete(f"/v1/files/{file_id}").status_code == 200
    events = mine.get(f"/v1/jobs/{child}/events").get_json()["data"]
    assert [e["data"] for e in events if e["kind"] == "file_deleted"] == [
        {"file": file_id, "reason": "deleted"}
    ]


@pytest.mark.parametrize(
    ("value", "code"),
    [("soon", "invalid_type"), ("-1", "invalid_type"), ("1.5", "invalid_type"), ("36501", "invalid_value")],
)
def test_a_bad_file_retention_is_refused_and_nothing_is_stored(
    tenants: tuple[Actor, Actor], value: str, code: str
) -> None:
    mine, _ = tenants
    r = mine.upload(retention_days=value)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["field"] == "retention_days" and r.get_json()["error"]["code"] == code
    assert mine.bucket_keys() == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("7", "invalid_type"),
        (True, "invalid_type"),
        (2.5, "invalid_type"),
        (-1, "invalid_value"),
        (36501, "invalid_value"),
    ],
)
def test_a_bad_job_retention_is_refused_for_every_job_type(
    tenants: tuple[Actor, Actor], value: Any, code: str
) -> None:
    mine, _ = tenants
    file_id = mine.upload().get_json()["id"]
    bodies = [
        {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": file_id},
        {"type": "evaluate", "task": "text-classification", "model": "sentiment", "input_file": file_id},
        {"type": "train", "task": "text-classification", "training_file": file_id, "model_name": "m"},
    ]
    for body in bodies:
        r = mine.client.post("/v1/jobs", headers=mine.headers, json={**body, "retention_days": value})
        assert r.status_code == 400, (body["type"], r.get_json())
        assert r.get_json()["error"]["field"] == "retention_days" and r.get_json()["error"]["code"] == code
    assert mine.get("/v1/jobs").get_json()["data"] == []


def test_retention_defaults_to_the_server_setting_and_null_means_default(
    make_worker_settings: Callable[..., Settings],
) -> None:
    settings = make_worker_settings(INFERQ_RETENTION_DAYS="7")
    mine = Actor(create_app(settings).test_client(), settings, "defaults")
    upload = mine.upload().get_json()
    assert kept_for(upload) == timedelta(days=7)
    job = mine.submit(upload["id"], retention_days=None).get_json()
    assert about(kept_for(job), 7)
    forever = make_worker_settings(INFERQ_RETENTION_DAYS="none")
    kept = Actor(create_app(forever).test_client(), forever, "keeper")
    assert kept.upload().get_json()["delete_after"] is None


def test_objects_are_written_with_server_side_encryption_when_asked(
    make_worker_settings: Callable[..., Settings],
) -> None:
    # given: the service told to encrypt every object it writes
    settings = make_worker_settings(INFERQ_S3_SSE="AES256")
    mine = Actor(create_app(settings).test_client(), settings, "encrypted")
    storage = s3(settings)

    # when: a file is uploaded and a job runs over it (part objects, joined results, manifest)
    job = mine.run_job(mine.upload().get_json()["id"])
    # and: a large join takes the multipart copy path
    big = b"x" * (5 * 1024 * 1024 + 1)
    storage.put_bytes(f"t/{mine.id}/big/a", big)
    storage.put_bytes(f"t/{mine.id}/big/b", b"tail")
    assert (
        storage.concat([f"t/{mine.id}/big/a", f"t/{mine.id}/big/b"], f"t/{mine.id}/big/joined")
        == len(big) + 4
    )
    # and: a stream takes the upload path
    storage.put_stream(f"t/{mine.id}/big/streamed", io.BytesIO(big))

    # then: S3 reports every object of the tenant as encrypted
    written = mine.bucket_keys()
    assert len(written) >= 10
    for key in written:
        head = storage.client.head_object(Bucket=storage.bucket, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
    # and: the job's events say its results were stored encrypted
    events = mine.get(f"/v1/jobs/{job['id']}/events").get_json()["data"]
    assert [e["data"] for e in events if e["kind"] == "encryption"] == [{"server_side_encryption": "AES256"}]


def test_a_kms_key_is_passed_with_every_write(make_worker_settings: Callable[..., Settings]) -> None:
    settings = make_worker_settings(INFERQ_S3_SSE="aws:kms", INFERQ_S3_SSE_KMS_KEY_ID="alias/inferq-test")
    storage = s3(settings)
    storage.put_bytes("t/kms/one", b"secret")
    head = storage.client.head_object(Bucket=storage.bucket, Key=storage.prefix + "t/kms/one")
    assert head.get("ServerSideEncryption") == "aws:kms"
    assert "alias/inferq-test" in head.get("SSEKMSKeyId", "")


def test_without_encryption_settings_objects_are_written_plainly(
    make_worker_settings: Callable[..., Settings],
) -> None:
    assert s3(make_worker_settings()).write_args == {}


def test_a_train_job_goes_with_its_checkpoints_and_the_model_it_made_stays(
    tenants: tuple[Actor, Actor],
) -> None:
    mine, _ = tenants
    # given: an ended train job with a checkpoint under its prefix and the model version it registered
    labelled = b'{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'
    file_id = mine.upload(labelled, purpose="training", retention_days="0").get_json()["id"]
    body = {"type": "train", "task": "text-classification", "base_model": None, "training_file": file_id}
    r = mine.client.post("/v1/jobs", headers=mine.headers, json={**body, "model_name": "mine"})
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    storage = s3(mine.settings)
    storage.put_bytes(keys.checkpoint_prefix(mine.id, job_id, 1) + "model.safetensors", b"weights")
    model_key = keys.model_prefix(mine.id, "mine", 1) + "model.safetensors"
    storage.put_bytes(model_key, b"weights")
    finish_job(mine.settings, job_id, mine.id, b"", b"")
    with session_scope(mine.settings) as session:
        session.execute(update(Job).where(Job.id == job_id).values(delete_after=utcnow()))

    # when: the sweep runs
    assert sweep(mine.settings).jobs == 1

    # then: the job, its checkpoints and results are gone; the model's weights and the kept file stay
    assert mine.get(f"/v1/jobs/{job_id}").status_code == 404
    assert mine.bucket_keys() == sorted(
        storage.prefix + k for k in (keys.file_key(mine.id, file_id), model_key)
    )


def test_a_retry_not_yet_built_keeps_its_parents_input(tenants: tuple[Actor, Actor]) -> None:
    mine, _ = tenants
    # given: an ended job whose input is past its time, and a retry of it whose input is not built yet
    file_id = mine.upload().get_json()["id"]
    parent = mine.submit(file_id).get_json()["id"]
    finish_job(mine.settings, parent, mine.id, b"", b"")
    other = mine.upload().get_json()["id"]
    child = mine.submit(other).get_json()["id"]
    with session_scope(mine.settings) as session:
        session.execute(
            update(Job)
            .where(Job.id == child)
            .values(parent_job_id=parent, retry_of="errored", input_file_id=None)
        )
        session.execute(update(File).where(File.id == file_id).values(delete_after=utcnow()))

    # when / then: the input the child will read is neither deletable nor swept
    assert mine.delete(f"/v1/files/{file_id}").status_code == 409
    sweep(mine.settings)
    assert mine.get(f"/v1/files/{file_id}").status_code == 200
