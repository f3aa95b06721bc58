"""`shared.keys`: the object key layout, every key under its tenant's prefix and a job's under the job's."""

from __future__ import annotations

from inferq.shared import keys


def test_every_job_key_lies_under_the_job_prefix_under_the_tenant_prefix() -> None:
    # given a tenant and a job
    tenant, job = "ten_1", "job_1"
    # when the keys of that job's objects are made
    made = [
        keys.part_output_key(tenant, job, 7),
        keys.part_error_key(tenant, job, 7),
        keys.job_output_key(tenant, job),
        keys.job_error_key(tenant, job),
        keys.job_manifest_key(tenant, job),
        keys.retry_input_key(tenant, job),
        keys.retry_map_key(tenant, job),
        keys.checkpoint_prefix(tenant, job, 3),
        keys.checkpoints_prefix(tenant, job),
    ]
    # then they are the layout stored objects have, all under t/{tenant}/jobs/{job}/
    assert made == [
        "t/ten_1/jobs/job_1/parts/000007.out.jsonl",
        "t/ten_1/jobs/job_1/parts/000007.err.jsonl",
        "t/ten_1/jobs/job_1/output.jsonl",
        "t/ten_1/jobs/job_1/errors.jsonl",
        "t/ten_1/jobs/job_1/manifest.json",
        "t/ten_1/jobs/job_1/retry/input.jsonl",
        "t/ten_1/jobs/job_1/retry/map.jsonl",
        "t/ten_1/jobs/job_1/checkpoints/epoch-0003/",
        "t/ten_1/jobs/job_1/checkpoints/",
    ]
    assert all(k.startswith(keys.job_prefix(tenant, job)) for k in made)


def test_files_and_models_lie_under_the_tenant_prefix() -> None:
    # given a tenant, then its files and model versions are under t/{tenant}/
    assert keys.tenant_prefix("ten_1") == "t/ten_1/"
    assert keys.file_key("ten_1", "file_9") == "t/ten_1/files/file_9"
    assert keys.model_prefix("ten_1", "clf", 2) == "t/ten_1/models/clf/2/"
