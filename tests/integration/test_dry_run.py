"""`POST /v1/jobs?dry_run=true`: validated like a submit, the file parsed and tokenized, nothing created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from inferq.api import dry_run
from inferq.shared.db import session_scope
from inferq.shared.models import Job, JobEvent
from inferq.shared.registry import builtin_path
from tests.helpers.api_client import ApiClient
from tests.integration.test_api_jobs import control_messages

pytestmark = pytest.mark.integration

TEXTS = [f"sentence number {i} " + "word " * (i % 40) for i in range(30)]
BROKEN = [b"{not json", b'{"id": "x1", "body": "no text"}', b"[1, 2]"]


def mixed_file() -> bytes:
    """30 good records, with a broken line after every tenth good one (lines 11, 22, 33)."""
    lines: list[bytes] = []
    for i, text in enumerate(TEXTS):
        lines.append(json.dumps({"id": f"r{i}", "text": text}).encode())
        if i % 10 == 9:
            lines.append(BROKEN[i // 10])
    return b"\n".join(lines) + b"\n"


def predict(input_file: str, **extra: Any) -> dict[str, Any]:
    return {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": input_file, **extra}


def nothing_created(api: ApiClient) -> None:
    with session_scope(api.settings) as session:
        assert session.execute(select(func.count()).select_from(Job)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(JobEvent)).scalar_one() == 0
    assert control_messages(api.settings) == []


def test_dry_run_counts_records_errors_and_tokens_without_creating_a_job(api: ApiClient) -> None:
    headers = api.headers_for("acme")
    # given: a file of 30 good records and 3 broken lines
    file_id = api.upload(headers, mixed_file(), filename="in.jsonl").get_json()["id"]

    # when
    r = api.client.post("/v1/jobs?dry_run=true", headers=headers, json=predict(file_id))

    # then: the counts, the first errors with their lines, a histogram of the model's own token counts
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["records"] == 33 and body["bad_records"] == 3 and body["sampled"] is False
    assert [e["line"] for e in body["first_errors"]] == [11, 22, 33]
    assert [e["error"]["code"] for e in body["first_errors"]] == [
        "invalid_json",
        "missing_field",
        "not_an_object",
    ]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(builtin_path("minilm-l6")))
    lengths = [len(ids) for ids in tokenizer(TEXTS)["input_ids"]]
    want: dict[str, int] = dry_run.empty_histogram()
    for n in lengths:
        want[dry_run.bucket_of(n)] += 1
    assert body["token_histogram"] == want
    assert list(want) == ["1-16", "17-32", "33-64", "65-128", "129-256", "257+"]
    assert body["tokens"] == sum(lengths)
    assert body["estimated_seconds"] == pytest.approx(
        sum(lengths) / dry_run.DEFAULT_TOKENS_PER_SECOND, abs=1e-3
    )
    assert body["throughput"] == {"tokens_per_second": dry_run.DEFAULT_TOKENS_PER_SECOND, "source": "default"}
    # and: no job row, no event, no message
    nothing_created(api)


def test_dry_run_refuses_what_submit_refuses_with_the_same_errors(api: ApiClient) -> None:
    headers = api.headers_for("acme")
    # given: a valid file, and bodies each wrong in one way
    file_id = api.upload(headers, mixed_file(), filename="in.jsonl").get_json()["id"]
    bodies = [
        predict(file_id, model="nope"),
        predict("file_doesnotexist"),
        predict(file_id, task="translate"),
        predict(file_id, unknown=1),
        predict(file_id, model="minilm-l6", task="text-classification"),
    ]
    for body in bodies:
        # when it is dry-run and submitted
        dry = api.client.post("/v1/jobs?dry_run=true", headers=headers, json=body)
        real = api.client.post("/v1/jobs", headers=headers, json=body)
        # then: the same status and error
        assert dry.status_code == real.status_code >= 400, body
        assert dry.get_json() == real.get_json(), body
    # and: a dry run of a train job or a bad flag is refused
    train = {"type": "train", "task": "text-classification", "training_file": file_id}
    r = api.client.post("/v1/jobs?dry_run=true", headers=headers, json=train)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "dry_run"
    r = api.client.post("/v1/jobs?dry_run=maybe", headers=headers, json=predict(file_id))
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_value"
    nothing_created(api)


def test_a_large_file_is_sampled_and_scaled(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = api.headers_for("acme")
    # given: a server whose whole-file limit is below the file's size
    data = mixed_file() * 4
    file_id = api.upload(headers, data, filename="in.jsonl").get_json()["id"]
    monkeypatch.setattr(dry_run, "MAX_WHOLE_BYTES", len(data) // 2)
    monkeypatch.setattr(dry_run, "SAMPLE_BYTES", len(data) // 4 + 10)

    # when
    body = api.client.post("/v1/jobs?dry_run=true", headers=headers, json=predict(file_id)).get_json()

    # then: the sample says so, and its counts are scaled to the file's 132 records
    assert body["sampled"] is True and 0 < body["sampled_bytes"] <= len(data) // 4 + 10
    assert body["records"] == 132
    assert body["bad_records"] == 12
    assert abs(sum(body["token_histogram"].values()) - 120) <= 6
    nothing_created(api)


def test_a_record_larger_than_the_sample_is_estimated_by_bytes(api: ApiClient) -> None:
    headers = api.headers_for("acme")
    # given: a file whose one record is 50 MB of text, far larger than the sample read of a large file
    record = b'{"id": "big", "text": "' + b"word " * (10 * 1024 * 1024) + b'"}\n'
    file_id = api.upload(headers, record, filename="big.jsonl").get_json()["id"]

    # when
    r = api.client.post("/v1/jobs?dry_run=true", headers=headers, json=predict(file_id))

    # then: one record of far more than 256 tokens, of which the model reads its max_length (256), and a
    # time for them; never 0 tokens
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["records"] == 1 and body["sampled"] is True and body["sampled_bytes"] > 0
    assert body["token_histogram"]["257+"] == 1 and sum(body["token_histogram"].values()) == 1
    assert body["tokens"] == 256
    assert body["estimated_seconds"] == pytest.approx(256 / dry_run.DEFAULT_TOKENS_PER_SECOND, abs=1e-3)
    nothing_created(api)


def test_a_long_text_is_estimated_from_its_head_and_a_non_empty_one_never_counts_0() -> None:
    tokenizer = dry_run.load_tokenizer(str(builtin_path("minilm-l6")))
    # given: a text 20 times longer than what is tokenized of it, a short one, and a blank one
    long_text = "word " * (dry_run.TOKENIZE_CHARS * 4)
    exact = len(tokenizer.encode(long_text).ids)

    # when they are counted
    counts = dry_run.token_counts(tokenizer, [long_text, "hello world", " "])

    # then: the long one within 1% of its real count, the short one exactly, the blank one at least 1
    assert abs(counts[0] - exact) <= exact // 100
    assert counts[1] == len(tokenizer.encode("hello world").ids)
    assert counts[2] >= 1
