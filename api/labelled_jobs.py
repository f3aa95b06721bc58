"""Labelled files, and submitting `train` jobs: everything checked at once, the job committed, then sent.

One job part covers the training file; after commit the part goes to the `training` queue
(`inferq.train_job`), where one worker holds its lease for the whole run. Evaluate jobs read labelled
files too, but run as predict jobs do (`api.model_jobs`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.api.context import current_settings, plausible_id, tenant_id
from inferq.api.job_rows import create_job_once, insert_job, lock_model_version
from inferq.api.limits import check_live_jobs
from inferq.api.serializers import job_object
from inferq.api.train_specs import (
    CNN,
    CNN_ARCHITECTURES,
    FINETUNE_IMAGE,
    FINETUNE_TEXT,
    SCRATCH_TEXT,
    TrainSpec,
    resolve_hyperparameters,
)
from inferq.api.webhook_targets import check_webhook_url
from inferq.shared import jobs, queue, registry
from inferq.shared.db import session_scope
from inferq.shared.errors import InvalidRequest, NotFound, Unprocessable
from inferq.shared.ids import new_id
from inferq.shared.job_types import JobType
from inferq.shared.jobs import PartSpec
from inferq.shared.model_limits import check_max_length
from inferq.shared.models import File, Job, JobPart
from inferq.shared.tasks import EMBEDDING, IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION, input_fields

log = logging.getLogger(__name__)

LABELLED_PURPOSES = ("training", "input")
LABEL_FIELD = "label"
# What a base model must do to be fine-tuned for each task.
BASE_TASKS = {
    TEXT_CLASSIFICATION: (EMBEDDING, TEXT_CLASSIFICATION),
    IMAGE_CLASSIFICATION: (IMAGE_CLASSIFICATION,),
}


def labelled_file(session: Session, file_id: str, task: str, field_name: str) -> File:
    """The tenant's file of purpose training or input, with `label` and the task's input field."""
    if not plausible_id(file_id, "file"):
        raise NotFound(f"file {file_id!r} does not exist", field=field_name, code="file_not_found")
    f = session.execute(
        select(File).where(File.id == file_id, File.tenant_id == tenant_id()).with_for_update()
    ).scalar_one_or_none()
    if f is None:
        raise NotFound(f"file {file_id!r} does not exist", field=field_name, code="file_not_found")
    if f.purpose not in LABELLED_PURPOSES:
        raise InvalidRequest(
            f"file {f.id} has purpose {f.purpose!r}; labelled files have purpose 'training' or 'input'",
            field=field_name,
            code="invalid_file_purpose",
        )
    seen = set(f.fields or [])
    wanted = input_fields(task)
    where = "column" if f.format in ("csv", "parquet") else "field in any record"
    if not set(wanted) & seen:
        raise Unprocessable(
            f"file {f.id} has no {' or '.join(repr(w) for w in wanted)} {where}, which {task} reads",
            field=field_name,
            code="missing_field",
        )
    if LABEL_FIELD not in seen:
        raise Unprocessable(
            f"file {f.id} has no 'label' {where}: training and evaluation need labelled records",
            field=field_name,
            code="missing_field",
        )
    return f


def _base(session: Session, spec: TrainSpec) -> tuple[str, registry.ResolvedModel | None]:
    """The training family and the base model version (None for project architectures)."""
    if spec.base_model is None:
        return (SCRATCH_TEXT if spec.task == TEXT_CLASSIFICATION else CNN), None
    if spec.task == IMAGE_CLASSIFICATION and spec.base_model in CNN_ARCHITECTURES:
        return CNN, None
    base = registry.resolve(session, tenant_id(), spec.base_model, None, field_name="base_model")
    if base.task not in BASE_TASKS[spec.task]:
        raise InvalidRequest(
            f"base model {base.ref} does {base.task}; {spec.task} training starts from a "
            f"{' or '.join(BASE_TASKS[spec.task])} model"
            + (f" or one of {', '.join(CNN_ARCHITECTURES)}" if spec.task == IMAGE_CLASSIFICATION else ""),
            field="base_model",
            code="model_task_mismatch",
        )
    lock_model_version(session, base, "base_model")
    return (FINETUNE_TEXT if spec.task == TEXT_CLASSIFICATION else FINETUNE_IMAGE), base


def _check_model_name(name: str) -> None:
    if not registry.NAME_RE.match(name) or name in registry.BUILTINS or name in CNN_ARCHITECTURES:
        raise InvalidRequest(
            f"model_name {name!r} is not allowed: 1 to 64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and not a built-in name",
            field="model_name",
            code="invalid_value",
        )


def submit_train(spec: TrainSpec, body: dict[str, Any], idem_key: str | None) -> dict[str, Any]:
    """`body`: as the client sent it (the idempotency key's hash covers it)."""
    _check_model_name(spec.model_name)
    settings = current_settings()
    check_webhook_url(spec.settings.webhook_url, settings)
    tenant = tenant_id()
    window = spec.settings.completion_window_seconds or settings.default_completion_window_seconds

    def create(session: Session) -> dict[str, Any]:
        check_live_jobs(session, tenant, settings)
        family, base = _base(session, spec)
        check_max_length(spec.hyperparameters.get("max_length"), base, "hyperparameters.max_length")
        hyperparameters = resolve_hyperparameters(family, spec.hyperparameters)
        training = labelled_file(session, spec.training_file, spec.task, "training_file")
        validation = (
            labelled_file(session, spec.validation_file, spec.task, "validation_file")
            if spec.validation_file is not None
            else None
        )
        if base is not None:
            model_ref = base.ref
        else:
            model_ref = spec.base_model or ""
        job = insert_job(
            session,
            Job(
                id=new_id("job"),
                tenant_id=tenant,
                type=JobType.TRAIN,
                task=spec.task,
                model=model_ref,
                model_version_id=base.version_id if base is not None else None,
                input_file_id=training.id,
                total=training.records,
                params={
                    "family": family,
                    "base_model": model_ref or None,
                    "validation_file": validation.id if validation is not None else None,
                    "model_name": spec.model_name,
                    "hyperparameters": hyperparameters,
                },
                priority=spec.settings.priority,
                metadata_=spec.settings.metadata,
                webhook_url=spec.settings.webhook_url,
            ),
            window,
            mark_sent=False,
            retention_days=spec.settings.retention_days,
        )
        records = int(training.records or 0)
        jobs.plan_single_part(
            session,
            job.id,
            PartSpec(
                index=0, byte_start=0, byte_end=training.bytes, first_line=1, first_record=0, records=records
            ),
            records,
        )
        session.flush()
        session.refresh(job)
        return job_object(job)

    resource, replayed = create_job_once(tenant, idem_key, body, create)
    if not replayed:
        with session_scope(settings) as session:
            part_ids = list(
                session.execute(select(JobPart.id).where(JobPart.job_id == resource["id"])).scalars()
            )
        for part_id in part_ids:
            queue.try_send(queue.TASK_TRAIN, [part_id], settings=settings)
        log.info("train job %s queued: %s from %s", resource["id"], spec.model_name, resource["model"])
    return resource
