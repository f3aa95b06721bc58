"""Train then predict: `"model": "train:<job_id>"` waits for a training job, then runs on what it made.

Real Postgres, Redis and moto S3; the Celery worker runs in process only in the tests that need one, and
is started after the jobs are submitted, so what a waiting job looks like can be seen first.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update
from werkzeug.serving import make_server

from inferq.api.app import create_app
from inferq.cli.client_commands import register_client_commands
from inferq.shared import jobs, queue
from inferq.shared.db import session_scope
from inferq.shared.models import Job, JobPart, Tenant, utcnow
from inferq.shared.registry import register_folder
from inferq.shared.settings import Settings
from inferq.shared.states import JobStatus
from inferq.shared.storage import get_storage
from inferq.worker.finalizer import finalize_job
from inferq.worker.planner import plan_job
from inferq.worker.reconciler import reconcile
from tests.helpers.labelled_data import sentiment_rows, write_jsonl
from tests.helpers.tenant_http import Http, tenant_headers
from tests.helpers.tiny_models import make_tiny_text_classifier
from tests.helpers.worker_env import in_process_worker
from tests.integration.test_training import TENANT, events_of, upload, wait_terminal

pytestmark = pytest.mark.integration

# `worker_settings` (parts of 30 records), `http` and `tiny_base`: the shared ones of tests/conftest.py,
# for the training tests' TENANT.


@pytest.fixture
def tenant_name() -> str:
    return TENANT


def post(client: FlaskClient, headers: dict[str, str], path: str = "/v1/jobs", **body: Any) -> Any:
    return client.post(path, headers=headers, json=body)


def get_job(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/jobs/{job_id}", headers=headers).get_json())


def submit_train(
    client: FlaskClient, headers: dict[str, str], training_file: str, base_model: str | None = None
) -> str:
    """A 1-epoch train job from `base_model` (omitted: the default base, minilm-l6)."""
    base = {} if base_model is None else {"base_model": base_model}
    r = post(
        client,
        headers,
        type="train",
        task="text-classification",
        training_file=training_file,
        model_name="sentiment",
        hyperparameters={"epochs": 1, "batch_size": 8, "learning_rate": 0.003, "seed": 1},
        **base,
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def predict_body(model: str, input_file: str, task: str = "text-classification") -> dict[str, Any]:
    return {"type": "predict", "task": task, "model": model, "input_file": input_file}


@pytest.fixture
def files(http: Http, tmp_path: Path) -> dict[str, str]:
    """A labelled training file (24 records) and an input file (2 records)."""
    client, headers = http
    rows = [{"id": "a", "text": "great movie"}, {"id": "b", "text": "awful food"}]
    return {
        "training": upload(client, headers, write_jsonl(tmp_path / "train.jsonl", sentiment_rows(24))),
        "input": upload(client, headers, write_jsonl(tmp_path / "in.jsonl", rows), purpose="input"),
    }


def trained_by_hand(settings: Settings, training_job_id: str, tmp_path: Path) -> str:
    """Make a queued train job succeed without a worker: register a model as its and end it, through
    `shared.jobs` as the trainer and the finalizer would. Returns the model version's ref."""
    folder = make_tiny_text_classifier(tmp_path / "trained", ["neg", "pos"])
    with session_scope(settings) as session:
        tenant_id = session.execute(select(Tenant.id).where(Tenant.name == TENANT)).scalar_one()
        ref = register_folder(
            session,
            get_storage(settings),
            tenant_id,
            "sentiment",
            folder,
            "text-classification",
            created_by_job=training_job_id,
        ).ref
        assert jobs.transition(session, training_job_id, JobStatus.RUNNING)
        assert jobs.transition(session, training_job_id, JobStatus.FINALIZING, result_model=ref)
        assert jobs.transition(session, training_job_id, JobStatus.SUCCEEDED)
    return ref


def part_count(settings: Settings, job_id: str) -> int:
    with session_scope(settings) as session:
        return int(
            session.execute(
                select(func.count()).select_from(JobPart).where(JobPart.job_id == job_id)
            ).scalar_one()
        )


# ---- end to end, with a worker ------------------------------------------------------------------------


def test_a_predict_job_waits_for_training_then_runs_on_the_new_version(
    http: Http, worker_settings: Settings, tiny_base: str, files: dict[str, str], tmp_path: Path
) -> None:
    client, headers = http
    # given: a train job, not started yet (no worker runs)
    train_id = submit_train(client, headers, files["training"], base_model=tiny_base)
    # when: the CLI submits a predict job on its model, and the API an evaluate job
    server = make_server("127.0.0.1", 0, create_app(worker_settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        group = click.Group("inferq")
        register_client_commands(group)
        env = {
            "INFERQ_URL": f"http://127.0.0.1:{server.server_port}",
            "INFERQ_API_KEY": headers["Authorization"].removeprefix("Bearer "),
        }
        inputs = write_jsonl(
            tmp_path / "cli.jsonl", [{"id": "a", "text": "great"}, {"id": "b", "text": "bad"}]
        )
        args = ["submit", str(inputs), "--task", "text-classification", "--model", f"train:{train_id}"]
        result = CliRunner(env=env).invoke(group, args)
    finally:
        server.shutdown()
        thread.join()
    assert result.exit_code == 0, result.output
    predict_id = result.stdout.strip()
    r = post(client, headers, **{**predict_body(f"train:{train_id}", files["training"]), "type": "evaluate"})
    assert r.status_code == 202, r.get_json()
    evaluate_id = r.get_json()["id"]
    # then: both are queued, say what they wait for, and are not planned nor re-sent
    for job_id in (predict_id, evaluate_id):
        job = get_job(client, headers, job_id)
        assert job["status"] == "queued" and job["waiting_for"] == train_id, job
        assert job["model"] == f"train:{train_id}"
        assert train_id in job["status_reason"] and "waiting for training job" in job["status_reason"]
        waiting = [e for e in events_of(client, headers, job_id) if e["kind"] == "waiting"]
        assert [e["data"] for e in waiting] == [{"training_job": train_id}]
        plan_job(job_id, worker_settings)
        assert part_count(worker_settings, job_id) == 0
    assert reconcile(worker_settings, resend_after=0).plans == 0

    # when: the worker trains, then runs what waited
    with in_process_worker(worker_settings, queue.QUEUE_TRAINING):
        trained = wait_terminal(client, headers, train_id)
        done = wait_terminal(client, headers, predict_id)
        evaluated = wait_terminal(client, headers, evaluate_id)
    # then: both ran on the new version
    assert trained["status"] == "succeeded" and trained["result_model"] == "sentiment:1", trained
    assert done["status"] == "succeeded", done
    assert done["model"] == "sentiment:1" and done["waiting_for"] is None and done["status_reason"] is None
    released = [e for e in events_of(client, headers, predict_id) if e["kind"] == "training_done"]
    assert [e["message"] for e in released] == [f"training job {train_id} succeeded; running on sentiment:1"]
    results = client.get(f"/v1/jobs/{predict_id}/results", headers=headers).data.splitlines()
    rows = [json.loads(line) for line in results]
    assert [r["id"] for r in rows] == ["a", "b"] and all(r["label"] in ("pos", "neg") for r in rows)
    assert evaluated["status"] == "succeeded" and evaluated["model"] == "sentiment:1", evaluated
    assert 0 <= evaluated["metrics"]["accuracy"] <= 1


def test_a_failing_training_fails_the_waiting_job_with_its_cause(
    http: Http, worker_settings: Settings, tiny_base: str, files: dict[str, str], tmp_path: Path
) -> None:
    client, headers = http
    # given: a train job on a file with one label (it fails), and a predict job waiting for it
    rows = [{"text": f"good movie {i}", "label": "pos"} for i in range(6)]
    one_label = upload(client, headers, write_jsonl(tmp_path / "one.jsonl", rows))
    train_id = submit_train(client, headers, one_label, base_model=tiny_base)
    r = post(client, headers, **predict_body(f"train:{train_id}", files["input"]))
    assert r.status_code == 202 and r.get_json()["waiting_for"] == train_id
    # when
    with in_process_worker(worker_settings, queue.QUEUE_TRAINING):
        trained = wait_terminal(client, headers, train_id)
        done = wait_terminal(client, headers, r.get_json()["id"])
    # then: it failed without running, and says why
    assert trained["status"] == "failed" and trained["error"]["code"] == "too_few_labels"
    assert done["status"] == "failed" and done["error"]["code"] == "training_failed", done
    assert done["error"]["message"] == f"training job {train_id} failed: {trained['error']['message']}"
    assert done["waiting_for"] is None and done["started_at"] is None
    assert part_count(worker_settings, done["id"]) == 0


# ---- without a worker: the state changes, driven by hand -----------------------------------------------


def test_the_training_job_succeeding_releases_the_waiting_job_in_its_transaction(
    http: Http, worker_settings: Settings, files: dict[str, str], tmp_path: Path
) -> None:
    client, headers = http
    # given: a predict job waiting for a train job
    train_id = submit_train(client, headers, files["training"])
    predict_id = post(client, headers, **predict_body(f"train:{train_id}", files["input"])).get_json()["id"]
    # when: the train job succeeds
    ref = trained_by_hand(worker_settings, train_id, tmp_path)
    # then: the predict job points at the new version and can be planned
    job = get_job(client, headers, predict_id)
    assert job["status"] == "queued" and job["model"] == ref and job["waiting_for"] is None
    with session_scope(worker_settings) as session:
        row = session.get(Job, predict_id)
        assert row is not None and row.model_version_id is not None and row.sent_at is not None
    plan_job(predict_id, worker_settings)
    assert get_job(client, headers, predict_id)["status"] == "running"
    assert part_count(worker_settings, predict_id) == 1


def test_cancelling_the_training_job_fails_the_waiting_job(
    http: Http, worker_settings: Settings, files: dict[str, str]
) -> None:
    client, headers = http
    # given
    train_id = submit_train(client, headers, files["training"])
    predict_id = post(client, headers, **predict_body(f"train:{train_id}", files["input"])).get_json()["id"]
    # when: the train job is cancelled (the finalizer ends it: no worker runs here)
    assert client.post(f"/v1/jobs/{train_id}/cancel", headers=headers).status_code == 202
    assert get_job(client, headers, predict_id)["status"] == "queued"  # cancelling is not the end yet
    assert finalize_job(train_id, worker_settings) == "cancelled"
    # then
    job = get_job(client, headers, predict_id)
    assert job["status"] == "failed" and job["error"] == {
        "code": "training_failed",
        "message": f"training job {train_id} was cancelled",
    }
    failed = [e for e in events_of(client, headers, predict_id) if e["to_status"] == "failed"]
    assert [(e["from_status"], e["data"]) for e in failed] == [
        ("queued", {"code": "training_failed", "training_job": train_id})
    ]


def test_a_waiting_job_can_be_cancelled_without_ever_planning(
    http: Http, worker_settings: Settings, files: dict[str, str], tmp_path: Path
) -> None:
    client, headers = http
    # given
    train_id = submit_train(client, headers, files["training"])
    predict_id = post(client, headers, **predict_body(f"train:{train_id}", files["input"])).get_json()["id"]
    # when
    r = client.post(f"/v1/jobs/{predict_id}/cancel", headers=headers)
    assert r.status_code == 202 and r.get_json()["status"] == "cancelling"
    assert finalize_job(predict_id, worker_settings) == "cancelled"
    # then: cancelled, no parts, and the training ending later changes nothing
    trained_by_hand(worker_settings, train_id, tmp_path)
    job = get_job(client, headers, predict_id)
    assert job["status"] == "cancelled" and job["waiting_for"] is None and job["status_reason"] is None
    assert job["model"] == f"train:{train_id}"
    assert part_count(worker_settings, predict_id) == 0
    assert not [
        e for e in events_of(client, headers, predict_id) if e["kind"] in ("planned", "training_done")
    ]


def test_a_waiting_job_still_expires_at_the_end_of_its_window(
    http: Http, worker_settings: Settings, files: dict[str, str]
) -> None:
    client, headers = http
    # given: a waiting job whose window has passed
    train_id = submit_train(client, headers, files["training"])
    predict_id = post(client, headers, **predict_body(f"train:{train_id}", files["input"])).get_json()["id"]
    with session_scope(worker_settings) as session:
        session.execute(
            update(Job).where(Job.id == predict_id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    # when
    assert reconcile(worker_settings).expired == 1
    assert finalize_job(predict_id, worker_settings) == "expired"
    # then
    job = get_job(client, headers, predict_id)
    assert job["status"] == "expired" and job["error"]["code"] == "expired"
    assert get_job(client, headers, train_id)["status"] == "queued"


def test_the_reconciler_settles_jobs_whose_training_ended_unseen(
    http: Http, worker_settings: Settings, files: dict[str, str], tmp_path: Path
) -> None:
    client, headers = http
    # given: three waiting jobs whose training jobs ended without settling them (as after a crash or a
    # bug: the rows are changed directly), one succeeded, one failed, one is gone
    ids = {}
    for name in ("succeeded", "failed", "gone"):
        train_id = submit_train(client, headers, files["training"])
        job = post(client, headers, **predict_body(f"train:{train_id}", files["input"])).get_json()
        ids[name] = (train_id, job["id"])
    folder = make_tiny_text_classifier(tmp_path / "m", ["neg", "pos"])
    with session_scope(worker_settings) as session:
        tenant_id = session.execute(select(Tenant.id).where(Tenant.name == TENANT)).scalar_one()
        ref = register_folder(
            session, get_storage(worker_settings), tenant_id, "sentiment", folder, "text-classification"
        ).ref
        session.execute(
            update(Job).where(Job.id == ids["succeeded"][0]).values(status="succeeded", result_model=ref)
        )
        session.execute(
            update(Job)
            .where(Job.id == ids["failed"][0])
            .values(status="failed", error_code="training_error", error_message="CUDA out of memory")
        )
        session.execute(delete(Job).where(Job.id == ids["gone"][0]))
    # when
    report = reconcile(worker_settings)
    # then: each is settled as the training job's end would have
    assert report.settled == 3 and report.plans == 0
    released = get_job(client, headers, ids["succeeded"][1])
    assert released["status"] == "queued" and released["model"] == ref and released["waiting_for"] is None
    failed = get_job(client, headers, ids["failed"][1])
    assert failed["error"] == {
        "code": "training_failed",
        "message": f"training job {ids['failed'][0]} failed: CUDA out of memory",
    }
    gone = get_job(client, headers, ids["gone"][1])
    assert gone["error"]["message"] == f"training job {ids['gone'][0]} no longer exists"
    # and the released job's plan is owed like any other: a later pass re-sends it
    assert reconcile(worker_settings, resend_after=0).plans == 1


# ---- at submit ------------------------------------------------------------------------------------------


def test_submits_that_can_never_run_are_refused_and_create_nothing(
    http: Http, worker_settings: Settings, files: dict[str, str], tmp_path: Path
) -> None:
    client, headers = http
    # given: a train job of another tenant, a predict job, a running train job and a failed one
    other = tenant_headers(worker_settings, "other")
    other_training = upload(client, other, write_jsonl(tmp_path / "other.jsonl", sentiment_rows(4)))
    other_train = submit_train(client, other, other_training)
    embed = post(client, headers, **predict_body("minilm-l6", files["input"], task="embedding")).get_json()[
        "id"
    ]
    train_id = submit_train(client, headers, files["training"])
    failed_id = submit_train(client, headers, files["training"])
    with session_scope(worker_settings) as session:
        assert jobs.fail_job(
            session, failed_id, "too_few_labels", "the training file has only one label ('pos')"
        )
    with session_scope(worker_settings) as session:
        before = session.execute(select(func.count()).select_from(Job)).scalar_one()
    cases = [
        (predict_body(f"train:{other_train}", files["input"]), 404, "job_not_found"),
        (predict_body("train:job_doesnotexist", files["input"]), 404, "job_not_found"),
        (predict_body("train:nonsense", files["input"]), 404, "job_not_found"),
        (predict_body(f"train:{embed}", files["input"]), 400, "not_a_train_job"),
        (predict_body(f"train:{train_id}", files["input"], task="embedding"), 400, "model_task_mismatch"),
        (predict_body(f"train:{failed_id}", files["input"]), 409, "training_failed"),
    ]
    # when / then
    answers = {}
    for body, status, code in cases:
        r = post(client, headers, **body)
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code), (body, r.get_json())
        assert r.get_json()["error"]["field"] == "model"
        answers[body["model"]] = r.get_json()["error"]["message"]
    # another tenant's job reads exactly as one that does not exist
    assert answers[f"train:{other_train}"] == f"job {other_train!r} does not exist"
    assert "only one label ('pos')" in answers[f"train:{failed_id}"]
    with session_scope(worker_settings) as session:
        assert session.execute(select(func.count()).select_from(Job)).scalar_one() == before


def test_a_succeeded_training_resolves_at_once_and_dry_run_needs_it_finished(
    http: Http, worker_settings: Settings, files: dict[str, str], tmp_path: Path
) -> None:
    client, headers = http
    # given: a train job not finished yet
    train_id = submit_train(client, headers, files["training"])
    body = predict_body(f"train:{train_id}", files["input"])
    # when / then: a dry run cannot measure a model that does not exist yet
    r = post(client, headers, "/v1/jobs?dry_run=true", **body)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "training_not_finished", r.get_json()
    assert "minilm-l6:1" in r.get_json()["error"]["message"]  # the base to dry-run with instead
    # given: it succeeded
    ref = trained_by_hand(worker_settings, train_id, tmp_path)
    # when / then: the dry run and the submit both use the trained version
    r = post(client, headers, "/v1/jobs?dry_run=true", **body)
    assert r.status_code == 200 and r.get_json()["records"] == 2, r.get_json()
    r = post(client, headers, **body)
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["model"] == ref and job["waiting_for"] is None and job["status_reason"] is None
    assert not [e for e in events_of(client, headers, job["id"]) if e["kind"] == "waiting"]
