"""`/v1/files` against Postgres, Redis and the moto S3 server: uploads are streamed, scanned and
refused whole, with nothing left behind in the bucket when they are."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import threading
from collections.abc import Callable, Iterator

import boto3
import httpx
import pytest
from waitress.server import TcpWSGIServer, create_server

from inferq.shared.settings import KIB, MIB, Settings
from inferq.shared.storage import S3Storage, get_storage
from tests.helpers.api_client import ApiClient
from tests.helpers.ports import free_port
from tests.helpers.tenant_resources import tenant_of_key

pytestmark = pytest.mark.integration

JSONL = b"".join(b'{"id": "r%d", "text": "sentence number %d"}\n' % (i, i) for i in range(20))
CSV = b"id,text,label\n" + b"".join(b"r%d,sentence %d,pos\n" % (i, i) for i in range(12))


def bucket_keys(settings: Settings) -> list[str]:
    """Every object in the test's bucket (keys relative to the storage prefix)."""
    return sorted(get_storage(settings).list(""))


def open_multipart_uploads(settings: Settings) -> list[str]:
    storage = get_storage(settings)
    assert isinstance(storage, S3Storage)
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])]


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "inferq-boundary") -> bytes:
    """A multipart/form-data body with the parts in exactly this order."""
    out = io.BytesIO()
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def error_of(response: httpx.Response | object) -> dict[str, object]:
    body = response.get_json() if hasattr(response, "get_json") else response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]  # type: ignore[no-any-return]


# ---- uploads that succeed ------------------------------------------------------------------------


def test_jsonl_upload_is_stored_under_a_server_key_with_its_counts(api: ApiClient) -> None:
    # given a tenant
    headers = api.headers_for("acme")

    # when it uploads a JSONL file under a name that tries to escape its folder
    r = api.upload(headers, JSONL, filename="../../etc/passwd.jsonl")

    # then the file object says what was stored
    assert r.status_code == 201, r.get_json()
    assert r.content_type == "application/json; charset=utf-8"
    f = r.get_json()
    assert set(f) >= {"id", "filename", "bytes", "purpose", "format", "records", "sha256", "created_at"}
    assert f["id"].startswith("file_")
    assert f["filename"] == "passwd.jsonl"
    assert (f["bytes"], f["purpose"], f["format"], f["records"]) == (len(JSONL), "input", "jsonl", 20)
    assert f["sha256"] == hashlib.sha256(JSONL).hexdigest()
    assert f["created_at"].endswith("Z")
    # and the bytes sit under the tenant's prefix at a key the server made
    keys = bucket_keys(api.settings)
    assert len(keys) == 1
    assert keys[0].startswith("t/") and keys[0].endswith(f"/files/{f['id']}")
    # and the file reads back as it was sent
    assert api.client.get(f"/v1/files/{f['id']}", headers=headers).get_json() == f
    content = api.client.get(f"/v1/files/{f['id']}/content", headers=headers)
    assert content.status_code == 200
    assert content.headers["Content-Type"] == "application/jsonl; charset=utf-8"
    assert content.data == JSONL


def test_csv_upload_counts_rows_and_downloads_as_csv(api: ApiClient) -> None:
    # given a tenant
    headers = api.headers_for()

    # when it uploads a CSV file
    r = api.upload(headers, CSV, filename="reviews.csv")

    # then it is a CSV file of 12 records, served back as text/csv
    assert r.status_code == 201, r.get_json()
    f = r.get_json()
    assert (f["format"], f["records"], f["bytes"]) == ("csv", 12, len(CSV))
    content = api.client.get(f"/v1/files/{f['id']}/content", headers=headers)
    assert content.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert content.data == CSV


def test_jsonl_with_five_percent_broken_lines_is_accepted_and_counted(api: ApiClient) -> None:
    # given 100 lines of which every 20th is not JSON
    lines = [
        b'{"text": "broken' if i % 20 == 0 else b'{"id": "%d", "text": "ok %d"}' % (i, i) for i in range(100)
    ]
    data = b"\n".join(lines) + b"\n"

    # when it is uploaded
    r = api.upload(api.headers_for(), data, filename="mixed.jsonl")

    # then the upload is accepted and every record is counted (bad ones fail later, per record)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["records"] == 100


def test_purpose_may_come_after_the_file_part(api: ApiClient) -> None:
    # given a multipart body whose purpose field follows the file
    body = multipart([("file", "late.jsonl", JSONL), ("purpose", None, b"training")])

    # when it is uploaded
    r = api.client.post(
        "/v1/files",
        headers=api.headers_for(),
        data=body,
        content_type="multipart/form-data; boundary=inferq-boundary",
    )

    # then the trailing purpose is used
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["purpose"] == "training"


def test_redirect_true_answers_a_presigned_url_that_serves_the_bytes(api: ApiClient) -> None:
    # given an uploaded file
    headers = api.headers_for()
    file_id = api.upload(headers, JSONL).get_json()["id"]

    # when its content is asked for with ?redirect=true
    r = api.client.get(f"/v1/files/{file_id}/content?redirect=true", headers=headers)

    # then the answer is a 302 to a presigned S3 URL that serves the same bytes
    assert r.status_code == 302
    assert r.headers["Location"].startswith(api.settings.s3_endpoint_url or "")
    assert httpx.get(r.headers["Location"]).content == JSONL


# ---- uploads that are refused, leaving nothing behind -------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "status", "code"),
    [
        (b"", "empty.jsonl", 422, "empty_file"),
        (b"\n\n  \n", "blank.jsonl", 422, "empty_file"),
        (b"id,text\n", "header-only.csv", 422, "empty_file"),
        (bytes(range(256)) * 64, "garbage.bin", 415, None),
        (b'{"text": "ok"}\n' + b"\xff\xfe\x00\x81" * 100 + b"\n", "binary.jsonl", 415, "invalid_encoding"),
        (b"not json at all\nneither this\n", "nothing.jsonl", 422, "no_valid_records"),
        (b"PAR1" + b"\x00" * 100, "table.parquet", 415, None),
    ],
)
def test_unusable_uploads_are_refused_whole(
    api: ApiClient, data: bytes, filename: str, status: int, code: str | None
) -> None:
    # given a tenant
    headers = api.headers_for()

    # when it uploads a file that cannot serve as records
    r = api.upload(headers, data, filename=filename)

    # then it is refused with a stable code, and nothing is stored or listed
    assert r.status_code == status, r.get_json()
    error = error_of(r)
    if code is not None:
        assert error["code"] == code
    assert bucket_keys(api.settings) == []
    assert api.client.get("/v1/files", headers=headers).get_json()["data"] == []


@pytest.mark.parametrize(
    ("parts", "field", "code"),
    [
        ([("purpose", None, b"input")], "file", "field_required"),
        ([("purpose", None, b"input"), ("file", None, JSONL)], "file", "invalid_type"),
        ([("purpose", None, b"nonsense"), ("file", "a.jsonl", JSONL)], "purpose", "invalid_value"),
        ([("file", "a.jsonl", JSONL)], "purpose", "field_required"),
        ([("file", "a.jsonl", JSONL), ("purpose", None, b"output")], "purpose", "invalid_value"),
        ([("colour", None, b"red"), ("file", "a.jsonl", JSONL)], "colour", "unknown_field"),
    ],
)
def test_bad_forms_are_400_with_the_field(
    api: ApiClient, parts: list[tuple[str, str | None, bytes]], field: str, code: str
) -> None:
    # when a form lacks the file, has a bad or missing purpose, or an unknown field
    r = api.client.post(
        "/v1/files",
        headers=api.headers_for(),
        data=multipart(parts),
        content_type="multipart/form-data; boundary=inferq-boundary",
    )

    # then it is a 400 naming the field, and nothing is stored
    assert r.status_code == 400, r.get_json()
    assert error_of(r) | {"message": ""} == {"code": code, "field": field, "message": ""}
    assert bucket_keys(api.settings) == []


def test_a_body_that_is_not_multipart_is_415(api: ApiClient) -> None:
    # when the upload is sent as JSON
    r = api.client.post("/v1/files", headers=api.headers_for(), json={"file": "x", "purpose": "input"})

    # then it is refused as the wrong media type
    assert r.status_code == 415
    assert error_of(r)["code"] == "unsupported_content_type"


@pytest.fixture
def small_limit_api(make_client: Callable[[Settings], ApiClient], s3_settings: Settings) -> ApiClient:
    """An app that accepts uploads of at most 64 KiB."""
    return make_client(s3_settings.with_overrides(max_upload_bytes=64 * KIB))


def test_a_content_length_over_the_limit_is_413_before_anything_is_stored(small_limit_api: ApiClient) -> None:
    # given a body larger than the limit plus the multipart allowance
    data = b'{"text": "%s"}\n' % (b"x" * 100) * 20_000

    # when it is uploaded
    r = small_limit_api.upload(small_limit_api.headers_for(), data)

    # then it is 413 file_too_large and nothing is in the bucket
    assert r.status_code == 413
    assert error_of(r)["code"] == "file_too_large"
    assert bucket_keys(small_limit_api.settings) == []


def test_a_file_part_over_the_limit_is_413_and_removed(small_limit_api: ApiClient) -> None:
    # given a body under the request allowance whose file is over the upload limit
    data = b'{"text": "%s"}\n' % (b"x" * 100) * 1000  # ~113 KiB

    # when it is uploaded
    r = small_limit_api.upload(small_limit_api.headers_for(), data)

    # then it is 413 and nothing is left, half-written or not
    assert r.status_code == 413
    assert error_of(r)["code"] == "file_too_large"
    assert bucket_keys(small_limit_api.settings) == []
    assert open_multipart_uploads(small_limit_api.settings) == []


def test_an_oversize_upload_past_the_s3_multipart_threshold_leaves_no_open_upload(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given a 9 MiB limit (S3 switches to multipart uploads at 8 MiB) and a 10 MiB file
    api = make_client(s3_settings.with_overrides(max_upload_bytes=9 * MIB))
    line = b'{"text": "%s"}\n' % (b"y" * 1000)
    data = line * (10 * MIB // len(line))

    # when it is uploaded
    r = api.upload(api.headers_for(), data)

    # then it is 413 and the multipart upload was aborted
    assert r.status_code == 413
    assert bucket_keys(api.settings) == []
    assert open_multipart_uploads(api.settings) == []


@pytest.fixture
def served_small_limit(small_limit_api: ApiClient) -> Iterator[str]:
    """The 64 KiB app served by waitress (which supports chunked request bodies) on a free port."""
    port = free_port()
    server = create_server(small_limit_api.app, host="127.0.0.1", port=port, threads=2)
    assert isinstance(server, TcpWSGIServer)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        thread.join(timeout=5)


def test_a_chunked_upload_over_the_limit_is_413(small_limit_api: ApiClient, served_small_limit: str) -> None:
    # given a multipart body of ~2 MiB sent chunked, without a Content-Length
    body = multipart([("purpose", None, b"input"), ("file", "big.jsonl", b'{"text": "zzzz"}\n' * 120_000)])

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * KIB):
            yield body[start : start + 64 * KIB]

    # when it is posted to the real server
    r = httpx.post(
        f"{served_small_limit}/v1/files",
        headers={
            **small_limit_api.headers_for(),
            "Content-Type": "multipart/form-data; boundary=inferq-boundary",
        },
        content=chunks(),
        timeout=30,
    )

    # then it is 413 and nothing is stored
    assert r.status_code == 413
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert error_of(r)["code"] == "file_too_large"
    assert bucket_keys(small_limit_api.settings) == []


def test_a_chunked_upload_through_a_real_server_is_stored(
    small_limit_api: ApiClient, served_small_limit: str
) -> None:
    # given a multipart body sent chunked, with the purpose after the file
    body = multipart([("file", "small.jsonl", JSONL), ("purpose", None, b"input")])

    # when it is posted to the real server in small pieces
    r = httpx.post(
        f"{served_small_limit}/v1/files",
        headers={
            **small_limit_api.headers_for(),
            "Content-Type": "multipart/form-data; boundary=inferq-boundary",
        },
        content=(body[i : i + 100] for i in range(0, len(body), 100)),
        timeout=30,
    )

    # then it is stored whole
    assert r.status_code == 201, r.text
    assert (r.json()["bytes"], r.json()["records"]) == (len(JSONL), 20)
    assert get_storage(small_limit_api.settings).read_bytes(bucket_keys(small_limit_api.settings)[0]) == JSONL


# ---- listing, isolation, deleting ---------------------------------------------------------------


def test_lists_are_newest_first_and_paginate_with_an_opaque_cursor(api: ApiClient) -> None:
    # given five files, the last of purpose training
    headers = api.headers_for()
    ids = [api.upload(headers, JSONL, filename=f"f{i}.jsonl").get_json()["id"] for i in range(4)]
    ids.append(api.upload(headers, JSONL, filename="t.jsonl", purpose="training").get_json()["id"])
    newest_first = ids[::-1]

    # when they are listed two at a time
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.client.get(f"/v1/files{query}", headers=headers).get_json()
        seen.extend(f["id"] for f in page["data"])
        pages += 1
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if not page["has_more"]:
            break

    # then every file comes once, newest first, in three pages
    assert seen == newest_first
    assert pages == 3
    # and the purpose filter and the limit bounds work
    training = api.client.get("/v1/files?purpose=training", headers=headers).get_json()
    assert [f["id"] for f in training["data"]] == [ids[-1]]
    for bad in ("limit=0", "limit=1001", "limit=ten", "purpose=nope"):
        r = api.client.get(f"/v1/files?{bad}", headers=headers)
        assert r.status_code == 400, bad
        assert error_of(r)["field"] == bad.split("=")[0]


def test_another_tenants_file_is_404_everywhere_and_never_listed(api: ApiClient) -> None:
    # given a file of tenant A
    a, b = api.headers_for("tenant-a"), api.headers_for("tenant-b")
    file_id = api.upload(a, JSONL).get_json()["id"]

    # when tenant B reaches for it
    answers = [
        api.client.get(f"/v1/files/{file_id}", headers=b),
        api.client.get(f"/v1/files/{file_id}/content", headers=b),
        api.client.delete(f"/v1/files/{file_id}", headers=b),
    ]
    missing = api.client.get("/v1/files/file_00000000000000000000000000", headers=b)

    # then every answer is the 404 a missing id gets, and B's list is empty
    for r in answers:
        assert r.status_code == 404
        assert error_of(r)["code"] == missing.get_json()["error"]["code"] == "file_not_found"
    assert api.client.get("/v1/files", headers=b).get_json()["data"] == []
    assert api.client.get(f"/v1/files/{file_id}", headers=a).status_code == 200


def test_delete_removes_the_row_and_the_object(api: ApiClient) -> None:
    # given an uploaded file
    headers = api.headers_for()
    file_id = api.upload(headers, JSONL).get_json()["id"]

    # when it is deleted
    r = api.client.delete(f"/v1/files/{file_id}", headers=headers)

    # then it is gone from the API and from the bucket
    assert r.status_code == 200
    assert r.get_json() == {"id": file_id, "object": "file", "deleted": True}
    assert api.client.get(f"/v1/files/{file_id}", headers=headers).status_code == 404
    assert bucket_keys(api.settings) == []


def test_a_file_in_use_by_a_live_job_cannot_be_deleted(api: ApiClient) -> None:
    # given a queued job reading a file
    headers = api.headers_for()
    file_id = api.upload(headers, JSONL).get_json()["id"]
    job = api.submit(headers, type="predict", task="embedding", model="minilm-l6", input_file=file_id)
    assert job.status_code == 202, job.get_json()

    # when the file is deleted
    r = api.client.delete(f"/v1/files/{file_id}", headers=headers)

    # then it is refused while the job lives, and the bytes stay
    assert r.status_code == 409
    assert error_of(r)["code"] == "file_in_use"
    assert len(bucket_keys(api.settings)) == 1


# ---- idempotency and auth ------------------------------------------------------------------------


def test_the_same_idempotency_key_and_upload_return_the_first_file(api: ApiClient) -> None:
    # given an upload made with an idempotency key
    headers = {**api.headers_for(), "Idempotency-Key": "upload-1"}
    first = api.upload(headers, JSONL)
    assert first.status_code == 201

    # when the same upload is retried with the same key
    again = api.upload(headers, JSONL)

    # then the first file comes back, and only one object is stored
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert len(bucket_keys(api.settings)) == 1

    # and the same key with other bytes is a conflict that stores nothing
    other = api.upload(headers, CSV, filename="other.csv")
    assert other.status_code == 409
    assert error_of(other)["code"] == "idempotency_conflict"
    assert len(bucket_keys(api.settings)) == 1
    assert len(api.client.get("/v1/files", headers=headers).get_json()["data"]) == 1


def test_the_same_idempotency_key_of_two_tenants_is_two_files(api: ApiClient) -> None:
    # when two tenants upload with the same key
    a = api.upload({**api.headers_for("a"), "Idempotency-Key": "k"}, JSONL).get_json()
    b = api.upload({**api.headers_for("b"), "Idempotency-Key": "k"}, JSONL).get_json()

    # then each gets its own file
    assert a["id"] != b["id"]


def test_uploads_need_a_valid_key(api: ApiClient) -> None:
    # given a key that was revoked
    from inferq.shared.db import session_scope
    from inferq.shared.tenants import revoke_key

    revoked = api.new_key()
    with session_scope(api.settings) as session:
        assert revoke_key(session, revoked) == 1

    # when files are asked for without a key, with an unknown one, or with the revoked one
    answers = {
        "missing": api.client.get("/v1/files"),
        "not bearer": api.client.get("/v1/files", headers={"Authorization": "Basic abc"}),
        "unknown": api.client.get("/v1/files", headers=api.auth_headers("iq_nope")),
        "revoked": api.client.get("/v1/files", headers=api.auth_headers(revoked)),
    }

    # then each is a 401 in the error shape with a Bearer challenge
    for what, r in answers.items():
        assert r.status_code == 401, what
        assert error_of(r)["code"] in ("missing_api_key", "invalid_api_key"), what
        assert r.headers["WWW-Authenticate"] == "Bearer"


# ---- storage keys are made by the server ----------------------------------------------------------

HOSTILE_NAMES = {
    "parent folders": "../../../../etc/passwd.jsonl",
    "parent of the prefix": "../../t/tenant_other/files/file_x.jsonl",
    "absolute path": "/etc/cron.d/inferq.jsonl",
    "windows path": "C:\\Windows\\..\\system32\\evil.jsonl",
    "NUL byte": "evil\x00.jsonl",
    "NUL then folders": "a\x00/../../b.jsonl",
    "only dots": "..",
    "url-encoded dots": "%2e%2e%2f%2e%2e%2fescape.jsonl",
    "RTL override": "\u202elmjs.exe.jsonl",
    "emoji": "\U0001f600\U0001f4c4 r\u00e9sum\u00e9.jsonl",
    "very long": "\u00e9" * 3000 + ".jsonl",
    "controls": "tab\tbell\x07escape\x1b[31mdel\x7f.jsonl",
}


@pytest.mark.parametrize("filename", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_a_hostile_filename_lands_only_under_the_tenants_prefix(api: ApiClient, filename: str) -> None:
    # given a tenant
    headers = api.headers_for("acme")
    tenant = tenant_of_key(api, headers["Authorization"].split()[1])
    storage = get_storage(api.settings)
    assert isinstance(storage, S3Storage)

    # when it uploads a file under a hostile name (sent as raw UTF-8 in the part's header)
    r = api.client.post(
        "/v1/files",
        headers=headers,
        data=multipart([("purpose", None, b"input"), ("file", filename, JSONL)]),
        content_type="multipart/form-data; boundary=inferq-boundary",
    )

    # then it is stored, and the whole bucket holds one object: under the storage prefix, in the
    # tenant's files, named by the file's id only
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    s3 = boto3.client("s3", endpoint_url=api.settings.s3_endpoint_url, region_name="us-east-1")
    everything = [o["Key"] for o in s3.list_objects_v2(Bucket=storage.bucket).get("Contents", [])]
    assert everything == [f"{storage.prefix}t/{tenant}/files/{body['id']}"]
    # and the name comes back as metadata only: one printable path segment, no NUL, bounded
    name = body["filename"]
    assert name and len(name) <= 255
    assert "\x00" not in name and "/" not in name and "\\" not in name and name not in (".", "..")
    assert name.isprintable() and "\u202e" not in name
    assert api.client.get(f"/v1/files/{body['id']}", headers=headers).get_json()["filename"] == name
    assert api.client.get(f"/v1/files/{body['id']}/content", headers=headers).data == JSONL


def test_hostile_names_in_the_form_header_itself_never_reach_storage(api: ApiClient) -> None:
    # given form headers with quotes, percent-encoded and RFC 2231 filenames
    headers = api.headers_for("acme")
    raw_headers = [
        b'form-data; name="file"; filename="../../x.jsonl"; filename*=UTF-8\'\'..%2F..%2Fy.jsonl',
        b'form-data; name="file"; filename="a\\"/../b.jsonl"',
        b'form-data; name="file"; filename="' + "\u202e\U0001f600".encode() + b'.jsonl"',
    ]
    for disposition in raw_headers:
        body = (
            b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\ninput\r\n'
            b"--B\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + JSONL + b"\r\n--B--\r\n"
        )

        # when it is uploaded
        r = api.client.post(
            "/v1/files", headers=headers, data=body, content_type="multipart/form-data; boundary=B"
        )

        # then it is stored under a server-made key
        assert r.status_code == 201, r.get_json()
        assert "/" not in r.get_json()["filename"]
    tenant = tenant_of_key(api, headers["Authorization"].split()[1])
    keys = bucket_keys(api.settings)
    assert len(keys) == len(raw_headers)
    assert all(key.startswith(f"t/{tenant}/files/file_") and key.count("/") == 3 for key in keys)


def test_a_raw_chunked_upload_past_the_s3_multipart_threshold_is_413_and_leaves_nothing(
    make_client: Callable[[Settings], ApiClient], s3_settings: Settings
) -> None:
    # given a real server with a 9 MiB limit (S3 multipart starts at 8 MiB) and a 12 MiB body that a
    # raw HTTP/1.1 request sends with Transfer-Encoding: chunked and no Content-Length
    api = make_client(s3_settings.with_overrides(max_upload_bytes=9 * MIB))
    port = free_port()
    server = create_server(api.app, host="127.0.0.1", port=port, threads=2)
    assert isinstance(server, TcpWSGIServer)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    key = api.new_key()
    line = b'{"text": "%s"}\n' % (b"w" * 1000)
    body = multipart([("purpose", None, b"input"), ("file", "huge.jsonl", line * (12 * MIB // len(line)))])
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: multipart/form-data; boundary=inferq-boundary\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            # when it is sent in 256 KiB chunks (the server may answer and close before the end)
            sock.sendall(head)
            with contextlib.suppress(OSError):
                for start in range(0, len(body), 256 * KIB):
                    chunk = body[start : start + 256 * KIB]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
            response = b""
            with contextlib.suppress(OSError):
                while data := sock.recv(65536):
                    response += data
    finally:
        server.close()
        thread.join(timeout=5)

    # then the answer is 413 file_too_large in the error shape, and the bucket has no object and no
    # open multipart upload
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.split()[1] == b"413", response[:500]
    assert b'"code":"file_too_large"' in rest
    assert bucket_keys(api.settings) == []
    assert open_multipart_uploads(api.settings) == []
