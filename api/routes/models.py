"""`/v1/models`: the built-in models and the tenant's own, their versions, and deleting a version."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from inferq.api.auth import require_auth
from inferq.api.context import current_storage, db, tenant_id
from inferq.api.pagination import list_body
from inferq.api.serializers import (
    builtin_model_object,
    builtin_version_object,
    tenant_model_object,
    version_object,
)
from inferq.shared.errors import Conflict, InvalidRequest, NotFound
from inferq.shared.models import Job, Model, ModelVersion
from inferq.shared.registry import BUILTINS, parse_ref
from inferq.shared.states import LIVE
from inferq.shared.storage import StorageError, delete_prefix

log = logging.getLogger(__name__)

bp = require_auth(Blueprint("models", __name__, url_prefix="/v1/models"))

DELETED = "deleted"


def _not_found(ref: str) -> NotFound:
    return NotFound(f"model {ref!r} does not exist", field="model", code="model_not_found")


def _versions(session: Session, name: str) -> tuple[Model, list[ModelVersion]] | None:
    """The tenant's model `name` and its versions that are not deleted, oldest first."""
    model = session.execute(
        select(Model).where(Model.tenant_id == tenant_id(), Model.name == name)
    ).scalar_one_or_none()
    if model is None:
        return None
    versions = list(
        session.execute(
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id, ModelVersion.status != DELETED)
            .order_by(ModelVersion.version)
        ).scalars()
    )
    return (model, versions) if versions else None


@bp.get("")
def list_models() -> dict[str, Any]:
    data = [builtin_model_object(m) for m in BUILTINS.values()]
    with db() as session:
        rows = session.execute(
            select(Model, ModelVersion)
            .join(ModelVersion, ModelVersion.model_id == Model.id)
            .where(Model.tenant_id == tenant_id(), ModelVersion.status != DELETED)
            .order_by(Model.name, ModelVersion.version)
        ).all()
    grouped: dict[str, tuple[Model, list[ModelVersion]]] = {}
    for model, mv in rows:
        grouped.setdefault(model.name, (model, []))[1].append(mv)
    data.extend(tenant_model_object(m.name, m.created_at, versions) for m, versions in grouped.values())
    return list_body(data)


@bp.get("/<model>")
def get_model(model: str) -> dict[str, Any]:
    """`name` → the model with its versions; `name:version` → that one version."""
    ref = model
    name, version = parse_ref(ref)
    if name in BUILTINS:
        builtin = BUILTINS[name]
        if version is None:
            return builtin_model_object(builtin)
        if version == builtin.version:
            return builtin_version_object(builtin)
        raise _not_found(ref)
    with db() as session:
        found = _versions(session, name)
    if found is None:
        raise _not_found(ref)
    row, versions = found
    if version is None:
        return tenant_model_object(row.name, row.created_at, versions)
    for mv in versions:
        if mv.version == version:
            return version_object(row.name, mv)
    raise _not_found(ref)


@bp.delete("/<model>")
def delete_model_version(model: str) -> dict[str, Any]:
    """Only `name:version`: the version stops resolving and its weights leave storage."""
    ref = model
    name, version = parse_ref(ref)
    if version is None:
        raise InvalidRequest(
            f"name the version to delete: {name}:<version>", field="model", code="version_required"
        )
    if name in BUILTINS:
        raise Conflict(
            f"{name} is a built-in model and cannot be deleted", field="model", code="model_builtin"
        )
    with db() as session:
        mv = session.execute(
            select(ModelVersion)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(
                Model.tenant_id == tenant_id(),
                Model.name == name,
                ModelVersion.version == version,
                ModelVersion.status != DELETED,
            )
            .with_for_update()
        ).scalar_one_or_none()
        if mv is None:
            raise _not_found(ref)
        in_use = session.execute(
            select(exists().where(Job.model_version_id == mv.id, Job.status.in_(LIVE)))
        ).scalar_one()
        if in_use:
            raise Conflict(
                f"model {name}:{version} is used by a job that has not finished",
                field="model",
                code="model_in_use",
            )
        # The row stays (finished jobs still name it) but no reference resolves to it any more.
        mv.status = DELETED
        prefix = mv.storage_prefix
    try:
        delete_prefix(current_storage(), prefix)
    except StorageError as e:
        log.error("model %s:%s deleted, but its weights under %s remain: %s", name, version, prefix, e)
    return {"id": f"{name}:{version}", "object": "model", "deleted": True}
