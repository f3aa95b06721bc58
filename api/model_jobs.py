"""Submitting jobs that run a model over a file, `predict` and `evaluate`: one path, checked at once,
committed, then sent.

They differ only in the file they read: a predict job reads a file of purpose input holding the task's
field; an evaluate job reads a labelled file (`api.labelled_jobs.labelled_file`), and its finalizer
computes the metrics. Both then run the normal plan → parts → finalize pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.api import model_refs
from inferq.api.context import current_settings, plausible_id, tenant_id
from inferq.api.job_rows import create_job_once, insert_job
from inferq.api.job_specs import PredictSpec
from inferq.api.labelled_jobs import labelled_file
from inferq.api.limits import check_live_jobs
from inferq.api.serializers import job_object
from inferq.api.webhook_targets import check_webhook_url
from inferq.shared import queue
from inferq.shared.errors import InvalidRequest, NotFound, Unprocessable
from inferq.shared.ids import new_id
from inferq.shared.job_types import JobType
from inferq.shared.models import File, Job
from inferq.shared.tasks import input_fields

log = logging.getLogger(__name__)


def input_file_for(session: Session, spec: PredictSpec) -> File:
    """The input file: the tenant's, of purpose input, with the field the task reads. Locked for the
    transaction so that it cannot be deleted under the new job."""
    if not plausible_id(spec.input_file, "file"):
        raise NotFound(f"file {spec.input_file!r} does not exist", field="input_file", code="file_not_found")
    f = session.execute(
        select(File).where(File.id == spec.input_file, File.tenant_id == tenant_id()).with_for_update()
    ).scalar_one_or_none()
    if f is None:
        raise NotFound(f"file {spec.input_file!r} does not exist", field="input_file", code="file_not_found")
    if f.purpose != "input":
        raise InvalidRequest(
            f"file {f.id} has purpose {f.purpose!r}; predict jobs read files of purpose 'input'",
            field="input_file",
            code="invalid_file_purpose",
        )
    wanted = input_fields(spec.task)
    if not set(wanted) & set(f.fields or []):
        where = "column" if f.format in ("csv", "parquet") else "field in any record"
        raise Unprocessable(
            f"file {f.id} has no {' or '.join(repr(w) for w in wanted)} {where}, which {spec.task} reads",
            field="input_file",
            code="missing_field",
        )
    return f


def _file(session: Session, spec: PredictSpec) -> File:
    if spec.type == JobType.EVALUATE:
        return labelled_file(session, spec.input_file, spec.task, "input_file")
    return input_file_for(session, spec)


def submit_model_job(spec: PredictSpec, body: dict[str, Any], idem_key: str | None) -> dict[str, Any]:
    """`body`: as the client sent it (the idempotency key's hash covers it)."""
    settings = current_settings()
    check_webhook_url(spec.settings.webhook_url, settings)
    tenant = tenant_id()
    window = spec.settings.completion_window_seconds or settings.default_completion_window_seconds

    def create(session: Session) -> dict[str, Any]:
        check_live_jobs(session, tenant, settings)
        model = model_refs.resolve(session, tenant, spec.model, spec.task)
        model_refs.check_params(model.model, spec.params)
        f = _file(session, spec)
        job = insert_job(
            session,
            Job(
                id=new_id("job"),
                tenant_id=tenant,
                type=spec.type,
                task=spec.task,
                model=model.ref,
                model_version_id=model.version_id,
                input_file_id=f.id,
                total=f.records,
                params=spec.params,
                priority=spec.settings.priority,
                metadata_=spec.settings.metadata,
                webhook_url=spec.settings.webhook_url,
            ),
            window,
            retention_days=spec.settings.retention_days,
        )
        return job_object(model_refs.start_waiting(session, job, model))

    resource, replayed = create_job_once(tenant, idem_key, body, create)
    if not replayed:
        if resource.get("waiting_for") is None:  # a waiting job is planned once its training job ends
            queue.try_send(queue.TASK_PLAN, [resource["id"]], settings=settings)
        log.info(
            "%s job %s queued: %s %s on %s",
            spec.type,
            resource["id"],
            spec.task,
            resource["model"],
            spec.input_file,
        )
    return resource
