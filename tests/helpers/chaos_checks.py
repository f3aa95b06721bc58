"""The one assertion of the chaos suite: nothing lost, nothing doubled, rows and objects agree."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from inferq.shared import keys
from inferq.shared.storage import get_storage
from tests.helpers.chaos_stack import Stack, Submitted

EMBEDDING_SIZE = 384  # minilm-l6


@dataclass
class Checked:
    output: bytes
    errors: list[dict[str, object]]
    ids_out: list[str]


def check_job(
    stack: Stack,
    submitted: Submitted,
    report: Callable[..., None],
    *,
    faults: int,
    status: str = "succeeded",
    failed_ids: Collection[str] = (),
    error_code: str | None = None,
    embeddings: bool = True,
) -> Checked:
    """Check a finished job against its input, its part rows and the objects in storage.

    - the job ended `status`; every part is `done` or `failed` (`skipped` too when the job expired);
    - the output has the id of every record of a done part exactly once, in input order, and the error
      file every record of a failed part (`failed_ids`, with `error_code`) exactly once, in order;
      output lines are embeddings of minilm-l6 unless `embeddings` is False (an image job's labels);
      records of skipped parts are nowhere;
    - ``completed + failed`` is the number of records that ran (``total`` when the job succeeded), and
      the job's counters equal both the part rows and the lines in the files;
    - every finished part's output and error objects exist, and the final output and error files are
      exactly the concatenation of the part objects in part order.

    The counts (lost, duplicated) go to the session's chaos report before anything is asserted.
    """
    job = stack.job(submitted.job_id)
    parts = stack.parts(submitted.job_id)
    storage = get_storage(stack.settings)
    tenant = job.tenant_id
    ran = [p for p in parts if p.status in ("done", "failed")]
    ran_ids = [i for p in ran for i in submitted.ids[p.first_record : p.first_record + p.records]]
    expected_errors = [i for i in ran_ids if i in set(failed_ids)]
    expected_out = [i for i in ran_ids if i not in set(failed_ids)]

    output = storage.read_bytes(keys.job_output_key(tenant, job.id)) if job.output_file_id else b""
    error_bytes = storage.read_bytes(keys.job_error_key(tenant, job.id)) if job.error_file_id else b""
    rows = [json.loads(line) for line in output.splitlines()]
    errors = [json.loads(line) for line in error_bytes.splitlines()]
    ids_out = [str(r["id"]) for r in rows]
    ids_err = [str(e["id"]) for e in errors]
    seen = Counter(ids_out + ids_err)
    report(
        faults=faults,
        jobs=1,
        records=len(submitted.ids),
        lost=sum(1 for i in set(ran_ids) if seen[i] == 0),
        duplicated=sum(n - 1 for n in seen.values() if n > 1),
    )
    context = stack.describe(job.id)

    assert job.status == status, context
    allowed = {"done", "failed"} | ({"skipped"} if status in ("expired", "cancelled") else set())
    assert {p.status for p in parts} <= allowed, context
    if status == "succeeded":
        assert len(ran) == len(parts) == job.parts_total == job.parts_done, context
        assert ran_ids == submitted.ids, "the parts do not cover the input exactly once"
    # every record exactly once, in input order, and nothing else
    assert [i for i, n in seen.items() if n > 1] == [], "duplicated records"
    assert ids_out == expected_out, "output ids differ from the input (lost, extra or out of order)"
    assert ids_err == expected_errors, "error ids differ from the records of failed parts"
    if error_code is not None:
        assert {e["error"]["code"] for e in errors} <= {error_code}  # type: ignore[index]
    if embeddings:
        assert all(len(r["embedding"]) == EMBEDDING_SIZE for r in rows)
    # counters: job == parts == files
    assert job.completed + job.failed == len(ran_ids), context
    if status == "succeeded":
        assert job.total == job.completed + job.failed == len(submitted.ids), context
    assert (job.completed, job.failed) == (len(ids_out), len(ids_err)), context
    assert sum(p.completed for p in ran) == job.completed and sum(p.failed for p in ran) == job.failed
    for p in ran:  # progress high-water marks end at the part's final counts: nothing counted twice
        assert (p.reported_completed, p.reported_failed) == (p.completed, p.failed), context
    # rows and objects agree: the final files are the concatenation of the finished parts' objects
    part_out = b""
    part_err = b""
    for p in ran:
        assert p.output_key and storage.exists(p.output_key), f"part {p.index} output object missing"
        assert p.error_key and storage.exists(p.error_key), f"part {p.index} error object missing"
        part_out += storage.read_bytes(p.output_key)
        part_err += storage.read_bytes(p.error_key)
    assert output == part_out, "the output file is not the concatenation of the part outputs"
    assert error_bytes == part_err, "the error file is not the concatenation of the part errors"
    return Checked(output=output, errors=errors, ids_out=ids_out)
