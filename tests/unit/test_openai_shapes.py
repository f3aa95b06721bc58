"""OpenAI batch lines and embeddings bodies: what is read from them and what is written back (pure)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from inferq.shared import batch_lines
from inferq.shared.openai_embeddings import RequestError, parse_request, response_body
from inferq.shared.records import Record


def line(custom_id: str | None, body: Any, url: str = "/v1/embeddings", method: str = "POST") -> bytes:
    obj: dict[str, Any] = {"method": method, "url": url, "body": body}
    if custom_id is not None:
        obj["custom_id"] = custom_id
    return json.dumps(obj).encode()


def accept_minilm(name: str) -> tuple[str, str] | None:
    return None if name == "minilm-l6" else ("model_mismatch", f"not {name}")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "m"}, "missing_input"),
        ({"input": "x"}, "missing_model"),
        ({"model": "m", "input": []}, "invalid_input"),
        ({"model": "m", "input": ["ok", ""]}, "invalid_input"),
        ({"model": "m", "input": [1, 2]}, "unsupported_input"),
        ({"model": "m", "input": "x", "encoding_format": "hex"}, "invalid_encoding_format"),
        ({"model": "m", "input": "x", "dimensions": True}, "invalid_dimensions"),
        ({"model": "m", "input": "x", "temperature": 1}, "unknown_parameter"),
    ],
)
def test_an_embeddings_body_that_cannot_be_served_names_its_problem(body: dict[str, Any], code: str) -> None:
    # when / then
    with pytest.raises(RequestError) as info:
        parse_request(body, max_inputs=4)
    assert info.value.code == code


def test_too_many_inputs_take_the_status_asked_for() -> None:
    with pytest.raises(RequestError) as info:
        parse_request({"model": "m", "input": ["a"] * 5}, max_inputs=4, too_many_status=413)
    assert (info.value.code, info.value.status) == ("too_many_inputs", 413)


def test_base64_is_the_little_endian_float32_bytes() -> None:
    # given a vector of float32 values
    vector = [0.5, -0.25, 1.0]
    # when it is answered as base64
    body = response_body("minilm-l6", [vector], [4], "base64")
    # then it decodes to the same values, and usage counts the tokens
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert np.frombuffer(raw, dtype="<f4").tolist() == vector
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_a_part_of_batch_lines_gives_a_record_or_an_error_per_non_blank_line() -> None:
    # given lines of every kind, and a blank one
    data = b"\n".join(
        [
            line("a", {"model": "minilm-l6", "input": ["one", "two"]}),
            b"",
            b"{not json",
            line(None, {"model": "minilm-l6", "input": "x"}),
            line("b", {"model": "minilm-l6", "input": "x"}, url="/v1/completions"),
            line("c", {"model": "minilm-l6", "input": "x"}, method="GET"),
            line("d", "text"),
            line("e", {"model": "other", "input": "x"}),
            line("f", {"model": "minilm-l6", "input": "x", "dimensions": 8}),
        ]
    )
    # when the part is parsed
    records, errors = batch_lines.parse_batch_part(
        data,
        first_line=10,
        first_record=7,
        endpoint="/v1/embeddings",
        check_model=accept_minilm,
        model_dimensions=384,
        model_ref="minilm-l6:1",
    )
    # then the request is a record of its inputs, and every other line an error at its line
    assert [(r.index, r.line, r.id, r.value.inputs) for r in records] == [(7, 10, "a", ["one", "two"])]
    assert [(e.index, e.line, e.id, e.code) for e in errors] == [
        (8, 12, None, "invalid_json"),
        (9, 13, None, "invalid_custom_id"),
        (10, 14, "b", "invalid_url"),
        (11, 15, "c", "invalid_method"),
        (12, 16, "d", "invalid_body"),
        (13, 17, "e", "model_mismatch"),
        (14, 18, "f", "unsupported_dimensions"),
    ]


def test_output_and_error_lines_are_openai_shaped() -> None:
    # given a parsed request and a failed one
    records, errors = batch_lines.parse_batch_part(
        line("a", {"model": "minilm-l6", "input": "x"}) + b"\n" + line("b", {"model": "nope", "input": "x"}),
        first_line=1,
        first_record=0,
        endpoint="/v1/embeddings",
        check_model=lambda name: None if name == "minilm-l6" else ("model_not_found", "no"),
        model_dimensions=None,
        model_ref="minilm-l6:1",
    )
    record: Record = records[0]
    # when their lines are written
    out = json.loads(batch_lines.output_line("job_01abc", record, [[0.5, 0.25]], [3]))
    err = json.loads(batch_lines.error_line("job_01abc", errors[0]))
    # then they carry the custom_id, the response and the error as OpenAI's batch output does
    assert out["id"] == "batch_req_01abc_0" and out["custom_id"] == "a" and out["error"] is None
    assert out["response"]["status_code"] == 200
    assert out["response"]["body"]["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
    assert err["custom_id"] == "b" and err["line"] == 2 and err["error"]["code"] == "model_not_found"
    assert err["response"]["status_code"] == 404


def test_the_probe_lists_the_models_asked_for_in_whole_lines_only() -> None:
    # given a head cut in the middle of its last line
    head = b"\n".join(
        [b"junk", line("a", {"model": "m1", "input": "x"}), line("b", {"model": "m2", "input": "x"})]
    )
    # when it is probed as the start of a longer file
    probe = batch_lines.probe(head[:-5], complete=False, endpoint="/v1/embeddings")
    # then the cut line is not read
    assert probe.models == [("m1", 2)] and probe.requests == 1 and probe.lines == 2
    assert probe.first_error is not None and probe.first_error.startswith("line 1:")
    assert batch_lines.job_id_of(batch_lines.batch_id("job_01xyz")) == "job_01xyz"
