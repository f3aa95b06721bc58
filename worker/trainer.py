"""Train: one leased task on the `training` queue fine-tunes (or trains from scratch) a classifier.

The job's single part row carries the lease, exactly like a predict part: a fencing token that grows
with each claim, a heartbeat thread that extends it and publishes progress, attempts counted in SQL.
Each epoch ends with a checkpoint in storage and an `epoch` event with its metrics; a redelivered task
(the worker died) finds the last checkpoint and resumes after it. On success the model folder is
registered as `name:N` and the part completes in the same transaction, so the generic finalizer ends the
job (its error file lists the training records that could not be used).
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from inferq.shared import jobs, keys, queue, registry
from inferq.shared.db import session_scope
from inferq.shared.jobs import Lease
from inferq.shared.models import File, Job, JobPart
from inferq.shared.records import RecordError, error_line
from inferq.shared.settings import Settings
from inferq.shared.storage import Storage, get_storage
from inferq.worker import checkpoints
from inferq.worker import lease as leasing
from inferq.worker.inference import resolve_device
from inferq.worker.lease import LeaseLost, Outcome, Progress, Stop
from inferq.worker.model_cache import local_model_dir
from inferq.worker.record_values import LabelledRecords, read_labelled_file
from inferq.worker.scoring import classification_metrics
from inferq.worker.trainables import FINETUNE_IMAGE, FINETUNE_TEXT, Trainable, build_trainable

log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.1
CANCEL_CHECK_SECONDS = 0.5
MAX_GRAD_NORM = 1.0
FINETUNE = (FINETUNE_TEXT, FINETUNE_IMAGE)


class TrainingError(Exception):
    """The data cannot train a model: the job fails with this code and message (no retry helps)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TrainContext:
    lease: Lease
    job_id: str
    tenant_id: str
    task: str
    family: str
    architecture: str  # the `model` of the job: base ref, CNN preset, or "" from scratch
    base: registry.ResolvedModel | None
    model_name: str
    hyperparameters: dict[str, Any]
    training: tuple[str, str]  # storage key, format
    validation: tuple[str, str] | None
    attempts: int


def _load_context(lease: Lease, settings: Settings) -> TrainContext:
    with session_scope(settings) as session:
        job = session.get(Job, lease.job_id)
        part = session.get(JobPart, lease.part_id)
        assert job is not None and part is not None
        params = dict(job.params or {})
        training = session.get(File, job.input_file_id) if job.input_file_id else None
        if training is None:
            raise TrainingError("input_file_missing", "the training file was deleted before the job ran")
        validation = None
        if params.get("validation_file"):
            vf = session.get(File, params["validation_file"])
            if vf is None:
                raise TrainingError(
                    "input_file_missing", "the validation file was deleted before the job ran"
                )
            validation = (vf.storage_key, vf.format)
        family = str(params["family"])
        base = registry.for_job(session, job.model, job.model_version_id) if family in FINETUNE else None
        return TrainContext(
            lease=lease,
            job_id=job.id,
            tenant_id=job.tenant_id,
            task=job.task,
            family=family,
            architecture=job.model or "",
            base=base,
            model_name=str(params["model_name"]),
            hyperparameters=dict(params["hyperparameters"]),
            training=(training.storage_key, training.format),
            validation=validation,
            attempts=part.attempts,
        )


def split(labels: list[str], seed: int, fraction: float = VALIDATION_FRACTION) -> tuple[list[int], list[int]]:
    """Seeded, stratified: about `fraction` of each label (one at least, when it has 3 or more) held out."""
    gen = torch.Generator().manual_seed(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    train: list[int] = []
    held: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        order = [idx[i] for i in torch.randperm(len(idx), generator=gen).tolist()]
        k = round(len(idx) * fraction)
        if k == 0 and len(idx) >= 3:
            k = 1
        held.extend(order[:k])
        train.extend(order[k:])
    return sorted(train), sorted(held)


@dataclass
class Data:
    train_values: list[Any]
    train_labels: list[int]
    val_values: list[Any]
    val_labels: list[int]
    labels: list[str]
    usable: int  # valid records of the training file
    errors: list[RecordError]  # bad records of the training file
    note: str


def prepare_data(ctx: TrainContext, storage: Storage, settings: Settings) -> Data:
    train = read_labelled_file(
        storage, ctx.training[0], ctx.training[1], ctx.task, ctx.tenant_id, settings.image_max_pixels
    )
    if not train.records:
        raise TrainingError(
            "no_valid_records",
            f"the training file has no usable labelled record ({len(train.errors)} bad records; "
            "see the error file)",
        )
    labels = sorted(set(train.labels))
    if len(labels) < 2:
        raise TrainingError(
            "too_few_labels",
            f"the training file has only one label ({labels[0]!r}) among its {len(train.records)} usable "
            "records; a classifier needs at least 2 labels",
        )
    index = {label: i for i, label in enumerate(labels)}
    seed = int(ctx.hyperparameters["seed"])
    if ctx.validation is not None:
        val: LabelledRecords = read_labelled_file(
            storage,
            ctx.validation[0],
            ctx.validation[1],
            ctx.task,
            ctx.tenant_id,
            settings.image_max_pixels,
        )
        known = [r for r in val.records if r.value[1] in index]
        if not known:
            raise TrainingError(
                "no_valid_records",
                "the validation file has no usable record with a label of the training file",
            )
        dropped = len(val.records) - len(known)
        note = f"validation file: {len(known)} records" + (
            f" ({dropped} with labels unseen in training and {len(val.errors)} bad ones left out)"
            if dropped or val.errors
            else ""
        )
        return Data(
            train.values,
            [index[x] for x in train.labels],
            [r.value[0] for r in known],
            [index[r.value[1]] for r in known],
            labels,
            len(train.records),
            train.errors,
            note,
        )
    tr, held = split(train.labels, seed)
    values, names = train.values, train.labels
    if not held:
        held = tr
    return Data(
        [values[i] for i in tr],
        [index[names[i]] for i in tr],
        [values[i] for i in held],
        [index[names[i]] for i in held],
        labels,
        len(train.records),
        train.errors,
        f"seeded split: {len(tr)} training, {len(held)} validation records",
    )


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalization weights (1-d parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def evaluate(
    trainable: Trainable, encoded: Any, targets: list[int], batch_size: int, device: torch.device
) -> tuple[float, list[int]]:
    """Mean loss and predicted label ids over a set."""
    model = trainable.model
    model.eval()
    total = 0.0
    preds: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(targets), batch_size):
            idx = list(range(start, min(start + batch_size, len(targets))))
            batch = trainable.collate(encoded, idx, device)
            y = torch.tensor([targets[i] for i in idx], dtype=torch.long, device=device)
            with _autocast(device):
                logits = model(**batch).logits
            total += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            preds.extend(logits.argmax(dim=-1).tolist())
    return total / max(1, len(targets)), preds


class StopCheck:
    """After every batch: did the heartbeat flag a stop, or (checked twice a second) was the job cancelled?"""

    def __init__(self, lease: Lease, progress: Progress, settings: Settings) -> None:
        self.lease = lease
        self.progress = progress
        self.settings = settings
        self.last = time.monotonic()

    def __call__(self) -> None:
        if self.progress.stop is None and time.monotonic() - self.last >= CANCEL_CHECK_SECONDS:
            self.last = time.monotonic()
            with session_scope(self.settings) as session:
                if jobs.is_cancelled(session, self.lease.job_id):
                    self.progress.stop = Stop.CANCELLED
        if self.progress.stop is not None:
            raise LeaseLost(self.progress.stop)


def _publish_epoch(settings: Settings, lease: Lease, entry: dict[str, Any], metrics: dict[str, Any]) -> None:
    with session_scope(settings) as session:
        if not jobs.set_metrics(session, lease, metrics):
            raise LeaseLost("lease lost or job stopped before the epoch could be recorded")
        jobs.record_event(
            session,
            lease.job_id,
            "epoch",
            f"epoch {entry['epoch']}/{metrics['epochs']}: train loss {entry['train_loss']:.4f}, "
            f"validation loss {entry['validation_loss']:.4f}, accuracy {entry['accuracy']:.4f}, "
            f"macro-F1 {entry['macro_f1']:.4f}",
            entry,
        )


def _event(settings: Settings, job_id: str, kind: str, message: str, data: dict[str, Any]) -> None:
    with session_scope(settings) as session:
        jobs.record_event(session, job_id, kind, message, data)


@dataclass(frozen=True)
class Trained:
    """What `train` made: the model (saved by `_finish`), the data it saw, the job's final metrics."""

    trainable: Trainable
    data: Data
    metrics: dict[str, Any]  # the job's `metrics` (JSON): final scores, per class, history …


def train(
    ctx: TrainContext, progress: Progress, storage: Storage, settings: Settings, workdir: Path
) -> Trained:
    """Run the epochs (resuming after the last checkpoint), register the model; the job's final metrics."""
    hp = ctx.hyperparameters
    seed, epochs, batch_size = int(hp["seed"]), int(hp["epochs"]), int(hp["batch_size"])
    data = prepare_data(ctx, storage, settings)
    with progress.lock:
        progress.failed = len(data.errors)
    device = resolve_device()
    torch.manual_seed(seed)
    base_dir = local_model_dir(ctx.base, storage, settings.model_cache_dir) if ctx.base is not None else None
    done = checkpoints.latest_epoch(storage, ctx.tenant_id, ctx.job_id)
    state: dict[str, Any] | None = None
    resume_dir: Path | None = None
    if done is not None:
        resume_dir = workdir / "resume"
        state = checkpoints.load_checkpoint(storage, ctx.tenant_id, ctx.job_id, done, resume_dir)
    trainable = build_trainable(
        ctx.family,
        data.labels,
        hp,
        base=base_dir,
        architecture=ctx.architecture,
        train_values=data.train_values,
        resume=resume_dir,
    )
    model = trainable.model.to(device)
    train_enc = trainable.encode(data.train_values)
    val_enc = trainable.encode(data.val_values)
    optimizer = torch.optim.AdamW(
        _param_groups(model, float(hp["weight_decay"])), lr=float(hp["learning_rate"])
    )
    steps_per_epoch = math.ceil(len(data.train_labels) / batch_size)
    total_steps = steps_per_epoch * epochs
    warmup = int(total_steps * float(hp["warmup_ratio"]))
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoints.restore_rng(state["rng"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        _event(
            settings,
            ctx.job_id,
            "resumed",
            f"resumed from the checkpoint after epoch {start_epoch} (attempt {ctx.lease.attempt})",
            {"epoch": start_epoch, "attempt": ctx.lease.attempt},
        )
    else:
        _event(
            settings,
            ctx.job_id,
            "training_started",
            f"{len(data.labels)} labels; {data.note}; {epochs} epochs on {device}",
            {
                "labels": data.labels,
                "train_records": len(data.train_labels),
                "validation_records": len(data.val_labels),
                "bad_records": len(data.errors),
                "device": str(device),
            },
        )
    stop = StopCheck(ctx.lease, progress, settings)
    started = time.perf_counter()
    last: dict[str, Any] = {}
    preds: list[int] = []
    for epoch in range(start_epoch, epochs):
        model.train()
        order = torch.randperm(
            len(data.train_labels), generator=torch.Generator().manual_seed(seed * 1009 + epoch)
        )
        loss_sum, seen = 0.0, 0
        epoch_started = time.perf_counter()
        for b in range(steps_per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size].tolist()
            batch = trainable.collate(train_enc, idx, device)
            y = torch.tensor([data.train_labels[i] for i in idx], dtype=torch.long, device=device)
            with _autocast(device):
                logits = model(**batch).logits
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach()) * len(idx)
            seen += len(idx)
            with progress.lock:
                progress.completed = data.usable * (epoch * steps_per_epoch + b + 1) // total_steps
            stop()
        val_loss, preds = evaluate(trainable, val_enc, data.val_labels, batch_size * 2, device)
        scores = classification_metrics(
            [data.labels[i] for i in data.val_labels], [data.labels[i] for i in preds], data.labels
        )
        last = {
            "epoch": epoch + 1,
            "train_loss": round(loss_sum / max(1, seen), 6),
            "validation_loss": round(val_loss, 6),
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            "seconds": round(time.perf_counter() - epoch_started, 3),
        }
        history.append(last)
        folder = workdir / f"epoch-{epoch + 1}"
        trainable.save(folder)
        checkpoints.save_checkpoint(
            storage,
            ctx.tenant_id,
            ctx.job_id,
            epoch + 1,
            folder,
            {
                "epoch": epoch + 1,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": checkpoints.rng_state(),
                "history": history,
            },
        )
        _publish_epoch(settings, ctx.lease, last, {**last, "epochs": epochs, "history": history})
        stop()
    if not last:  # every epoch was done before a restart: score the restored model once more
        val_loss, preds = evaluate(trainable, val_enc, data.val_labels, batch_size * 2, device)
        last = dict(history[-1])
    final = classification_metrics(
        [data.labels[i] for i in data.val_labels], [data.labels[i] for i in preds], data.labels
    )
    return Trained(
        trainable=trainable,
        data=data,
        metrics={
            "epoch": epochs,
            "epochs": epochs,
            "train_loss": last["train_loss"],
            "validation_loss": last["validation_loss"],
            "accuracy": final["accuracy"],
            "macro_f1": final["macro_f1"],
            "per_class": final["per_class"],
            "confusion_matrix": final["confusion_matrix"],
            "validation_records": len(data.val_labels),
            "train_records": len(data.train_labels),
            "train_seconds": round(time.perf_counter() - started, 3),
            "history": history,
        },
    )


def _finish(
    ctx: TrainContext, trained: Trained, storage: Storage, settings: Settings, workdir: Path
) -> Outcome:
    trainable, data, metrics = trained.trainable, trained.data, trained.metrics
    folder = workdir / "final"
    trainable.save(folder)
    out_key = keys.part_output_key(ctx.tenant_id, ctx.job_id, 0)
    err_key = keys.part_error_key(ctx.tenant_id, ctx.job_id, 0)
    storage.put_bytes(out_key, b"")
    storage.put_bytes(err_key, b"".join(error_line(e) for e in data.errors))
    summary = {k: metrics[k] for k in ("accuracy", "macro_f1", "train_loss", "validation_loss", "epochs")}
    with session_scope(settings) as session:
        model = registry.register_folder(
            session,
            storage,
            ctx.tenant_id,
            ctx.model_name,
            folder,
            ctx.task,
            created_by_job=ctx.job_id,
            base_model=ctx.architecture or None,
            metrics={**summary, "per_class": metrics["per_class"]},
            hyperparameters=ctx.hyperparameters,
        )
        fan_in = jobs.finish_training(
            session,
            ctx.lease,
            completed=data.usable,
            failed=len(data.errors),
            output_key=out_key,
            error_key=err_key,
            result_model=model.ref,
            metrics=metrics,
            stats={"model": model.ref, "train_seconds": metrics["train_seconds"]},
        )
        if fan_in is None:
            raise LeaseLost("lease lost before the model could be registered")
    log.info("job %s trained %s: accuracy %.4f", ctx.job_id, model.ref, metrics["accuracy"])
    leasing.finalize_if_last(ctx.lease, fan_in, settings)
    return Outcome.DONE


def _fail(settings: Settings, job_id: str, code: str, message: str) -> Outcome:
    """Give up on a training job: its one part is the job, so the job fails (no record file to finish)."""
    with session_scope(settings) as session:
        jobs.fail_job(session, job_id, code, message)
    return Outcome.FAILED


def run_training(part_id: str, settings: Settings) -> Outcome:
    """What happened: done, failed, skipped (not claimable), lost (lease lost), released."""
    with session_scope(settings) as session:
        lease = leasing.claim(session, part_id, settings)
    if lease is None:
        return Outcome.SKIPPED
    try:
        ctx = _load_context(lease, settings)
    except TrainingError as e:
        return _fail(settings, lease.job_id, e.code, e.message)
    if leasing.lost_too_often(ctx.attempts, settings):
        return _fail(
            settings,
            ctx.job_id,
            "worker_lost",
            f"the worker training this job was lost {ctx.attempts - 1} times (out of memory?)",
        )
    with session_scope(settings) as session:
        jobs.start_training(session, lease)
    storage = get_storage(settings)
    with leasing.held(lease, settings) as (progress, _):
        try:
            with tempfile.TemporaryDirectory(prefix="inferq-train-") as tmp:
                trained = train(ctx, progress, storage, settings, Path(tmp))
                return _finish(ctx, trained, storage, settings, Path(tmp))
        except LeaseLost as e:
            log.info("training job %s stopped: %s", ctx.job_id, e)
            return leasing.stopped(
                lease, progress, settings, "job stopped while training; checkpoints are kept"
            )
        except TrainingError as e:
            return _fail(settings, ctx.job_id, e.code, e.message)
        except Exception as e:
            return _on_error(ctx, settings, e)


def _on_error(ctx: TrainContext, settings: Settings, error: Exception) -> Outcome:
    message = f"{type(error).__name__}: {error}"
    if leasing.out_of_attempts(ctx.attempts, settings):
        log.exception("training job %s failed for good", ctx.job_id, exc_info=error)
        return _fail(settings, ctx.job_id, "training_error", message)
    log.warning("training job %s attempt %d failed, retrying: %s", ctx.job_id, ctx.attempts, message)
    return leasing.release_for_retry(ctx.lease, settings, ctx.attempts, message, queue.TASK_TRAIN)
