"""The object key layout, in one place. Every key lives under the tenant's prefix `t/{tenant}/`."""

from __future__ import annotations


def tenant_prefix(tenant_id: str) -> str:
    return f"t/{tenant_id}/"


def file_key(tenant_id: str, file_id: str) -> str:
    return f"{tenant_prefix(tenant_id)}files/{file_id}"


def job_prefix(tenant_id: str, job_id: str) -> str:
    return f"{tenant_prefix(tenant_id)}jobs/{job_id}/"


def part_output_key(tenant_id: str, job_id: str, index: int) -> str:
    return f"{job_prefix(tenant_id, job_id)}parts/{index:06d}.out.jsonl"


def part_error_key(tenant_id: str, job_id: str, index: int) -> str:
    return f"{job_prefix(tenant_id, job_id)}parts/{index:06d}.err.jsonl"


def job_output_key(tenant_id: str, job_id: str) -> str:
    return f"{job_prefix(tenant_id, job_id)}output.jsonl"


def job_error_key(tenant_id: str, job_id: str) -> str:
    return f"{job_prefix(tenant_id, job_id)}errors.jsonl"


def job_manifest_key(tenant_id: str, job_id: str) -> str:
    """The job's reproducibility record, beside its output and error files."""
    return f"{job_prefix(tenant_id, job_id)}manifest.json"


def retry_input_key(tenant_id: str, job_id: str) -> str:
    """A retry child's input: the parent's records to run again, one JSONL line each with its id."""
    return f"{job_prefix(tenant_id, job_id)}retry/input.jsonl"


def retry_map_key(tenant_id: str, job_id: str) -> str:
    """A retry child's position map: per input line, where it goes in the parent (shared.retry_merge)."""
    return f"{job_prefix(tenant_id, job_id)}retry/map.jsonl"


def model_prefix(tenant_id: str, name: str, version: int) -> str:
    return f"{tenant_prefix(tenant_id)}models/{name}/{version}/"


def checkpoint_prefix(tenant_id: str, job_id: str, epoch: int) -> str:
    """A training job's checkpoint after `epoch` (1-based): weights, optimizer, scheduler and RNG state."""
    return f"{job_prefix(tenant_id, job_id)}checkpoints/epoch-{epoch:04d}/"


def checkpoints_prefix(tenant_id: str, job_id: str) -> str:
    return f"{job_prefix(tenant_id, job_id)}checkpoints/"
