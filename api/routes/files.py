"""`/v1/files`: upload (streamed to storage and scanned on the way), list, get, download, delete."""

from __future__ import annotations

import logging
from typing import IO, Any, cast

from flask import Blueprint, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from inferq.api.auth import require_auth
from inferq.api.context import current_settings, current_storage, db, plausible_id, tenant_id
from inferq.api.contract.objects import PURPOSES, UPLOAD_PURPOSES
from inferq.api.http import content_response
from inferq.api.idempotency import Idempotency, create_once, header_key, request_hash
from inferq.api.pagination import list_body, page_request, paginate
from inferq.api.serializers import file_object
from inferq.api.text_ints import int_from_text
from inferq.api.uploads import FormPart, MultipartReader, PartStream, clean_filename
from inferq.shared import keys, records, retention
from inferq.shared.errors import Conflict, InvalidRequest, NotFound
from inferq.shared.ids import new_id
from inferq.shared.models import File, utcnow
from inferq.shared.settings import MAX_RETENTION_DAYS
from inferq.shared.storage import Storage, StorageError

log = logging.getLogger(__name__)

bp = require_auth(Blueprint("files", __name__, url_prefix="/v1/files"))

FORM_FIELDS = ("purpose", "retention_days")
HEAD_BYTES = 64 * 1024
UPLOAD_ENDPOINT = "POST /v1/files"


def check_purpose(value: str | None) -> str:
    if value is None:
        raise InvalidRequest(
            f"purpose is required: one of {', '.join(UPLOAD_PURPOSES)}",
            field="purpose",
            code="field_required",
        )
    if value not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}, got {value!r}",
            field="purpose",
            code="invalid_value",
        )
    return value


def form_retention_days(value: str | None) -> int | None:
    """The optional `retention_days` form field: whole days (0 = kept until deleted) up to 36500."""
    if value is None or value.strip() == "":
        return None
    return int_from_text(value, "retention_days", 0, MAX_RETENTION_DAYS, type_code="invalid_type")


def _read_form_field(form: MultipartReader, part: FormPart, fields: dict[str, str]) -> None:
    if part.name == "file":
        raise InvalidRequest("send one 'file' part per upload", field="file", code="invalid_value")
    if part.filename is not None or part.name not in FORM_FIELDS:
        raise InvalidRequest(
            f"unknown form field {part.name!r}: send 'file', 'purpose' and optionally 'retention_days'",
            field=part.name,
            code="unknown_field",
        )
    if part.name in fields:
        raise InvalidRequest(
            f"form field {part.name!r} is given twice", field=part.name, code="invalid_value"
        )
    fields[part.name] = form.read_field(part.name)


def delete_quietly(storage: Storage, key: str) -> None:
    """Remove a half-made object; a failure here is logged, the request's own error matters more."""
    try:
        storage.delete(key)
    except StorageError as e:
        log.error("could not delete %s after a failed upload: %s", key, e)


def get_file(session: Session, file_id: str, *, for_update: bool = False) -> File:
    """The tenant's file, or 404 exactly as if it did not exist."""
    if not plausible_id(file_id, "file"):
        raise NotFound(f"file {file_id!r} does not exist", field="file_id", code="file_not_found")
    stmt = select(File).where(File.id == file_id, File.tenant_id == tenant_id())
    if for_update:
        stmt = stmt.with_for_update()
    f = session.execute(stmt).scalar_one_or_none()
    if f is None:
        raise NotFound(f"file {file_id!r} does not exist", field="file_id", code="file_not_found")
    return f


@bp.post("")
def upload_file() -> tuple[dict[str, Any], int]:
    settings = current_settings()
    storage = current_storage()
    tenant = tenant_id()
    idem_key = header_key()
    form = MultipartReader.from_request(request)
    fields: dict[str, str] = {}
    part = form.next_part()
    while part is not None and part.name != "file":
        _read_form_field(form, part, fields)
        part = form.next_part()
    if part is None:
        raise InvalidRequest("the form has no 'file' part", field="file", code="field_required")
    if part.filename is None:
        raise InvalidRequest(
            "'file' must be a file part (with a filename), not a plain field",
            field="file",
            code="invalid_type",
        )
    if "purpose" in fields:
        check_purpose(fields["purpose"])
    if "retention_days" in fields:
        form_retention_days(fields["retention_days"])
    filename = clean_filename(part.filename)

    stream = PartStream(form, limit=settings.max_upload_bytes)
    fmt = records.detect_format(filename, stream.peek(HEAD_BYTES))
    scanner = records.UploadScanner(fmt, settings.max_records_per_file)
    stream.on_read(scanner.feed)

    file_id = new_id("file")
    key = keys.file_key(tenant, file_id)
    try:
        storage.put_stream(key, cast(IO[bytes], stream))
        scan = scanner.finish()
        part = form.next_part()
        while part is not None:
            _read_form_field(form, part, fields)
            part = form.next_part()
        purpose = check_purpose(fields.get("purpose"))
        days = form_retention_days(fields.get("retention_days"))

        def create(session: Session) -> dict[str, Any]:
            created_at = utcnow()
            f = File(
                id=file_id,
                tenant_id=tenant,
                filename=filename,
                purpose=purpose,
                format=fmt,
                bytes=scan.bytes,
                records=scan.records,
                fields=list(scan.fields),
                sha256=scan.sha256,
                storage_key=key,
                created_at=created_at,
                delete_after=retention.delete_after(created_at, days, settings),
            )
            session.add(f)
            session.flush()
            return file_object(f)

        def replay(session: Session, existing_id: str) -> dict[str, Any] | None:
            f = session.execute(
                select(File).where(File.id == existing_id, File.tenant_id == tenant)
            ).scalar_one_or_none()
            return None if f is None else file_object(f)

        idem = Idempotency(
            tenant,
            UPLOAD_ENDPOINT,
            idem_key,
            request_hash(purpose, filename, scan.sha256, *([] if days is None else [days])),
        )
        resource, replayed = create_once(idem, create, replay)
    except BaseException:
        delete_quietly(storage, key)
        raise
    if replayed:
        delete_quietly(storage, key)
    log.info("file %s stored: %s, %d bytes, %s records", resource["id"], fmt, scan.bytes, scan.records)
    return resource, 201


@bp.get("")
def list_files() -> dict[str, Any]:
    page = page_request()
    stmt = select(File).where(File.tenant_id == tenant_id())
    purpose = request.args.get("purpose")
    if purpose is not None:
        if purpose not in PURPOSES:
            raise InvalidRequest(
                f"purpose must be one of {', '.join(PURPOSES)}", field="purpose", code="invalid_value"
            )
        stmt = stmt.where(File.purpose == purpose)
    with db() as session:
        result = paginate(session, stmt, File.id, page)
        return list_body([file_object(f) for f in result.items], result.has_more, result.next_cursor)


@bp.get("/<file_id>")
def get_file_route(file_id: str) -> dict[str, Any]:
    with db() as session:
        return file_object(get_file(session, file_id))


@bp.get("/<file_id>/content")
def file_content(file_id: str) -> BaseResponse:
    with db() as session:
        f = get_file(session, file_id)
    return content_response(f)


@bp.delete("/<file_id>")
def delete_file(file_id: str) -> dict[str, Any]:
    with db() as session:
        f = get_file(session, file_id, for_update=True)
        if retention.files_in_use(session, f.tenant_id, [f.id]):
            raise Conflict(
                f"file {file_id!r} is the input of a job that has not finished; cancel it or wait",
                field="file_id",
                code="file_in_use",
            )
        # The bytes go first, inside this transaction: a failure leaves the row (retry the DELETE).
        retention.purge_file(session, current_storage(), f, "deleted")
    log.info("file %s deleted on request", file_id)
    return {"id": file_id, "object": "file", "deleted": True}
