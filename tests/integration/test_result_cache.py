"""The result cache (`params.cache: true`) through HTTP with a real Celery worker in-process, on
Postgres, Redis and moto S3; and its rows' insert-if-absent on Postgres (racing) and SQLite."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from inferq.api.app import create_app
from inferq.shared.db import session_scope
from inferq.shared.models import ResultCache, utcnow
from inferq.shared.registry import register_folder
from inferq.shared.settings import Settings
from inferq.shared.storage import get_storage
from inferq.shared.tenants import create_tenant_key
from inferq.worker import result_cache_store
from tests.e2e.inputs import real_sentences
from tests.helpers.tenant_http import tenant_headers, tenant_id
from tests.helpers.tiny_models import make_tiny_image_classifier
from tests.helpers.worker_env import QUICK_LEASES
from tests.integration.test_worker_pipeline import submit, upload, wait_terminal

pytestmark = pytest.mark.integration

RECORDS = 40
PART_RECORDS = 15  # three parts: 0-14, 15-29, 30-39
CHANGED = 5  # the record whose text differs between the two files
DUPLICATE = 10  # repeats record 0's text (with whitespace around it), in the same part
ACCENTED = 20  # "café" composed in file 1, decomposed in file 2: the same normalized input


@pytest.fixture
def worker_settings(make_worker_settings: Callable[..., Settings]) -> Settings:
    return make_worker_settings(INFERQ_PART_RECORDS=str(PART_RECORDS), **QUICK_LEASES)


@pytest.fixture
def http(worker_settings: Settings) -> tuple[FlaskClient, dict[str, str], dict[str, str]]:
    """A client and the auth headers of two tenants."""
    client = create_app(worker_settings).test_client()
    return client, tenant_headers(worker_settings, "cache-a"), tenant_headers(worker_settings, "cache-b")


def cache_rows(settings: Settings, tenant: str) -> int:
    with session_scope(settings) as session:
        return int(
            session.execute(
                select(func.count()).select_from(ResultCache).where(ResultCache.tenant_id == tenant)
            ).scalar_one()
        )


def write_input(path: Path, prefix: str, texts: list[str]) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"{prefix}{i:02d}", "text": t}) + "\n" for i, t in enumerate(texts)),
        "utf-8",
    )
    return path


def result_lines(client: FlaskClient, headers: dict[str, str], job_id: str) -> list[bytes]:
    r = client.get(f"/v1/jobs/{job_id}/results", headers=headers)
    assert r.status_code == 200, r.data
    return list(r.data.splitlines())


def without_id(line: bytes) -> bytes:
    """A line's bytes after its id (`{"id":"a00",` → the rest), to compare lines of different ids."""
    head = b'{"id":'
    assert line.startswith(head)
    return line[line.index(b",", len(head)) :]


def events(client: FlaskClient, headers: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=headers)
    assert r.status_code == 200, r.get_json()
    return list(r.get_json()["data"])


def run_job(client: FlaskClient, headers: dict[str, str], file_id: str, **params: Any) -> dict[str, Any]:
    job = submit(
        client, headers, task="embedding", model="minilm-l6", input_file=file_id, params=params or None
    )
    done = wait_terminal(client, headers, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"total": RECORDS, "completed": RECORDS, "failed": 0}
    return done


def test_cached_jobs_serve_earlier_results_per_tenant(
    http: tuple[FlaskClient, dict[str, str], dict[str, str]],
    celery_worker: Any,
    worker_settings: Settings,
    tmp_path: Path,
) -> None:
    client, tenant_a, tenant_b = http
    ten_a, ten_b = tenant_id(worker_settings, "cache-a"), tenant_id(worker_settings, "cache-b")
    # given: 40 sentences; file 2 has other ids, one changed text, and one text in another Unicode form
    texts = real_sentences(RECORDS)
    first = list(texts)
    first[DUPLICATE] = f"  {texts[0]}\n"
    first[ACCENTED] = texts[ACCENTED] + " caf\u00e9"
    second = list(first)
    second[CHANGED] = "A sentence that no earlier job has ever seen."
    second[ACCENTED] = texts[ACCENTED] + " cafe\u0301"
    file_1 = upload(client, tenant_a, write_input(tmp_path / "one.jsonl", "a", first))
    file_2 = upload(client, tenant_a, write_input(tmp_path / "two.jsonl", "b", second))

    # when: job 1 asks for the cache, nothing is stored yet
    job_1 = run_job(client, tenant_a, file_1, cache=True)
    # then: no hits; every distinct input computed once and stored
    assert job_1["metrics"]["cache_hits"] == 0 and job_1["metrics"]["cache_misses"] == RECORDS
    lines_1 = result_lines(client, tenant_a, job_1["id"])
    assert [json.loads(x)["id"] for x in lines_1] == [f"a{i:02d}" for i in range(RECORDS)]
    assert without_id(lines_1[DUPLICATE]) == without_id(lines_1[0])  # computed once, served twice
    assert cache_rows(worker_settings, ten_a) == RECORDS - 1
    parts_1 = [e for e in events(client, tenant_a, job_1["id"]) if e["kind"] == "part_done"]
    assert len(parts_1) == 3 and sum(e["data"]["cache_duplicates"] for e in parts_1) == 1
    assert all(e["data"]["cache_hits"] == 0 for e in parts_1)

    # when: job 2 runs over file 2 with the cache
    job_2 = run_job(client, tenant_a, file_2, cache=True)
    # then: all but the changed record are hits, reported per part, in the metrics and in an event
    assert job_2["metrics"]["cache_hits"] == RECORDS - 1 and job_2["metrics"]["cache_misses"] == 1
    events_2 = events(client, tenant_a, job_2["id"])
    assert sum(e["data"]["cache_hits"] for e in events_2 if e["kind"] == "part_done") == RECORDS - 1
    (note,) = [e for e in events_2 if e["kind"] == "result_cache"]
    assert note["message"] == f"result cache: {RECORDS - 1} of {RECORDS} records served from earlier results"
    assert note["data"] == {"cache_hits": RECORDS - 1, "cache_misses": 1}
    # and: the lines carry job 2's ids, in input order, and are byte-identical to job 1's for the same input
    lines_2 = result_lines(client, tenant_a, job_2["id"])
    assert [json.loads(x)["id"] for x in lines_2] == [f"b{i:02d}" for i in range(RECORDS)]
    for i in range(RECORDS):
        if i != CHANGED:
            assert without_id(lines_2[i]) == without_id(lines_1[i]), i
    changed = json.loads(lines_2[CHANGED])["embedding"]
    assert len(changed) == 384 and changed != json.loads(lines_1[CHANGED])["embedding"]
    assert cache_rows(worker_settings, ten_a) == RECORDS  # the changed record's result was added

    # when: another tenant runs the same file with the cache
    file_b = upload(client, tenant_b, tmp_path / "two.jsonl")
    job_3 = run_job(client, tenant_b, file_b, cache=True)
    # then: tenant A's results are not served to it
    assert job_3["metrics"]["cache_hits"] == 0 and job_3["metrics"]["cache_misses"] == RECORDS
    assert cache_rows(worker_settings, ten_b) == RECORDS - 1
    lines_3 = result_lines(client, tenant_b, job_3["id"])
    assert [json.loads(x)["id"] for x in lines_3] == [f"b{i:02d}" for i in range(RECORDS)]

    # when: tenant A runs file 2 without the cache
    job_4 = run_job(client, tenant_a, file_2)
    # then: no lookups, no hits, no rows written, no cache event; the same results as the cached run
    assert "cache_hits" not in job_4["metrics"] and "cache_misses" not in job_4["metrics"]
    assert cache_rows(worker_settings, ten_a) == RECORDS
    events_4 = events(client, tenant_a, job_4["id"])
    assert not any(e["kind"] == "result_cache" for e in events_4)
    assert not any("cache_hits" in e["data"] for e in events_4 if e["kind"] == "part_done")
    lines_4 = result_lines(client, tenant_a, job_4["id"])
    assert [json.loads(x)["id"] for x in lines_4] == [f"b{i:02d}" for i in range(RECORDS)]
    for cached, computed in zip(lines_2, lines_4, strict=True):
        # computed again, in batches of other records (other padding), so equal up to the precision the
        # parts ran in (bf16 where the CPU has it): served results are the earlier computation itself
        a, b = json.loads(cached)["embedding"], json.loads(computed)["embedding"]
        assert sum(x * y for x, y in zip(a, b, strict=True)) >= 0.9999
    # and: where the cached run computed the same batches (parts 1 and 2 of tenant B's job, which have no
    # duplicate and no hit), its lines are the uncached run's, byte for byte
    assert lines_3[PART_RECORDS:] == lines_4[PART_RECORDS:]


def png_base64(color: tuple[int, int, int], size: int = 12, **save: Any) -> str:
    image = Image.new("RGB", (size, size), color)
    image.putpixel((1, 2), (255 - color[0], 0, 0))
    buf = io.BytesIO()
    image.save(buf, format="PNG", **save)
    return base64.b64encode(buf.getvalue()).decode()


def test_images_are_cached_by_their_content_whether_inline_or_by_key(
    http: tuple[FlaskClient, dict[str, str], dict[str, str]],
    celery_worker: Any,
    worker_settings: Settings,
    tmp_path: Path,
) -> None:
    client, tenant_a, _ = http
    ten_a = tenant_id(worker_settings, "cache-a")
    storage = get_storage(worker_settings)
    with session_scope(worker_settings) as session:
        folder = make_tiny_image_classifier(tmp_path / "vit", ["red", "green", "blue"])
        register_folder(session, storage, ten_a, "colors", folder, "image-classification")
    red, blue = png_base64((200, 10, 10)), png_base64((10, 10, 200))
    # the same picture as another PNG encoding, stored in the tenant's area under a name
    storage.put_bytes(
        f"t/{ten_a}/images/red.png", base64.b64decode(png_base64((200, 10, 10), compress_level=0))
    )
    storage.put_bytes(f"t/{ten_a}/images/also-red.png", base64.b64decode(red))

    def run(name: str, rows: list[dict[str, str]]) -> tuple[dict[str, Any], list[bytes]]:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        file_id = upload(client, tenant_a, path)
        job = submit(
            client,
            tenant_a,
            task="image-classification",
            model="colors",
            input_file=file_id,
            params={"cache": True, "top_k": 2},
        )
        done = wait_terminal(client, tenant_a, job["id"])
        assert done["status"] == "succeeded", done
        return done, result_lines(client, tenant_a, job["id"])

    # when: inline red, red by key, inline blue
    job_1, lines_1 = run(
        "one.jsonl",
        [{"id": "x", "image": red}, {"id": "y", "image_key": "images/red.png"}, {"id": "z", "image": blue}],
    )
    # then: red is computed once (the key's object has the same pixels)
    assert job_1["metrics"]["cache_hits"] == 0 and job_1["metrics"]["cache_misses"] == 3
    assert without_id(lines_1[0]) == without_id(lines_1[1])
    assert cache_rows(worker_settings, ten_a) == 2

    # when: red under another key name, and blue again
    job_2, lines_2 = run(
        "two.jsonl", [{"id": "p", "image_key": "images/also-red.png"}, {"id": "q", "image": blue}]
    )
    # then: both served from job 1's results
    assert job_2["metrics"]["cache_hits"] == 2 and job_2["metrics"]["cache_misses"] == 0
    assert [json.loads(x)["id"] for x in lines_2] == ["p", "q"]
    assert without_id(lines_2[0]) == without_id(lines_1[0])
    assert without_id(lines_2[1]) == without_id(lines_1[2])


# ---- the rows ----------------------------------------------------------------------------------------


def test_store_is_insert_if_absent_and_survives_a_race_on_postgres(s3_settings: Settings) -> None:
    with session_scope(s3_settings) as session:
        create_tenant_key(session, "racer")
        create_tenant_key(session, "other")
    racer, other = tenant_id(s3_settings, "racer"), tenant_id(s3_settings, "other")
    keys = [f"{i:064x}" for i in range(1200)]
    first = {k: f'{{"n":"{i}"}}' for i, k in enumerate(keys[:700])}
    assert result_cache_store.store(s3_settings, racer, first) == 700

    # when: two workers store overlapping results at once, in opposite orders, several times over
    later = {k: '{"n":"later"}' for k in reversed(keys)}
    errors: list[BaseException] = []
    counts: list[int] = []

    def store() -> None:
        try:
            counts.append(result_cache_store.store(s3_settings, racer, later))
        except BaseException as e:  # pragma: no cover - what the test is about
            errors.append(e)

    threads = [threading.Thread(target=store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # then: no failure, each missing row inserted exactly once, nothing overwritten
    assert errors == [] and sum(counts) == 500
    found = result_cache_store.lookup(s3_settings, racer, [*keys, "f" * 64])
    assert len(found) == 1200
    assert all(found[k] == first[k] for k in keys[:700])
    assert all(found[k] == '{"n":"later"}' for k in keys[700:])
    # and: per tenant
    assert result_cache_store.lookup(s3_settings, other, keys) == {}


def test_store_is_insert_if_absent_on_sqlite(embedded_settings: Settings) -> None:
    with session_scope(embedded_settings) as session:
        create_tenant_key(session, "solo")
    solo = tenant_id(embedded_settings, "solo")
    keys = [f"{i:064x}" for i in range(650)]
    assert result_cache_store.store(embedded_settings, solo, {k: "one" for k in keys[:300]}) == 300
    assert result_cache_store.store(embedded_settings, solo, {k: "two" for k in keys}) == 350
    found = result_cache_store.lookup(embedded_settings, solo, keys)
    assert [found[k] for k in keys] == ["one"] * 300 + ["two"] * 350
    # a failure to store (here: no such tenant) is logged, never raised
    assert result_cache_store.store(embedded_settings, "ten_gone", {keys[0]: "x"}) == 0


def test_read_then_insert_stores_only_missing_keys(embedded_settings: Settings) -> None:
    # given: a tenant with one stored result
    with session_scope(embedded_settings) as session:
        create_tenant_key(session, "portable")
    tenant = tenant_id(embedded_settings, "portable")
    assert result_cache_store.store(embedded_settings, tenant, {"a" * 64: "one"}) == 1
    rows = [
        {"tenant_id": tenant, "key": key, "result": "two", "created_at": utcnow()}
        for key in ("a" * 64, "b" * 64)
    ]

    # when: the path for databases without ON CONFLICT stores both keys
    with session_scope(embedded_settings) as session:
        inserted = result_cache_store._insert_missing(session, rows)

    # then: only the missing key was inserted, and the stored one kept its result
    assert inserted == 1
    found = result_cache_store.lookup(embedded_settings, tenant, ["a" * 64, "b" * 64])
    assert found == {"a" * 64: "one", "b" * 64: "two"}
