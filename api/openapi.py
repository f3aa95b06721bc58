"""The OpenAPI 3.1 document of this API, and `/docs`: a self-contained HTML page rendered from it (no
scripts, no CDN).

The schemas of request bodies and of the objects the API answers with are generated from the contract
models (`api.contract`: `model_json_schema`, their `$defs` becoming components), so the document says
what the validators check, with their own limits: bodies, objects, lists, dry runs, readiness and
OpenAI's embeddings alike. What is written here is what no model says: the paths, their parameters and
answers.

tests/integration/test_api_ops.py checks that every route is documented and nothing else is.
"""

from __future__ import annotations

import functools
import html
import json
from typing import Any

from pydantic import TypeAdapter

from inferq.api.contract import objects, requests
from inferq.api.contract.errors import ErrorCode
from inferq.api.contract.schemas import model_schemas
from inferq.api.idempotency import MAX_KEY_LENGTH
from inferq.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from inferq.shared.states import JobStatus

Schema = dict[str, Any]
_STATES = "|".join(s.value for s in JobStatus)
# What `GET /v1/jobs?status=` accepts: states, comma-separated (empty items are skipped).
STATUS_LIST_PATTERN = f"^,*(?:{_STATES})(?:,+(?:{_STATES}))*,*$"
# What `api.idempotency.header_key` accepts, in ASCII: 1 to MAX_KEY_LENGTH printable characters.
IDEMPOTENCY_KEY_PATTERN = f"^[\\x21-\\x7e]([\\x20-\\x7e]{{0,{MAX_KEY_LENGTH - 2}}}[\\x21-\\x7e])?$"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


RETENTION_DAYS: Schema = TypeAdapter[Any](requests.RetentionDays).json_schema()


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PAGE_PARAMS = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "page size",
    ),
    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
]
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
    "description": "same key and body: the first result again (same id); same key, other body: 409",
}
RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
        "description": "seconds to wait before retrying",
    }
}
COMMON_ERRORS = {
    "401": _error("missing, unknown or revoked API key"),
    "429": {
        **_error(
            "rate_limited: over the tenant's requests per minute (INFERQ_RATE_LIMIT_PER_MINUTE); "
            "on job submits also quota_exceeded: the tenant's live jobs are at "
            "INFERQ_MAX_LIVE_JOBS_PER_TENANT"
        ),
        "headers": RETRY_AFTER,
    },
    "503": _error("database, storage or broker unavailable"),
}
FILE_ID = _path_param("file_id", "file_…")
JOB_ID = _path_param("job_id", "job_…")
BATCH_ID = _path_param("batch_id", "batch_…")
MODEL = _path_param("model", "name or name:version")
BYTES_CONTENT = {
    "application/jsonl; charset=utf-8": {"schema": {"type": "string"}},
    "text/csv; charset=utf-8": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}
JSONL_CONTENT = {"application/jsonl; charset=utf-8": {"schema": {"type": "string"}}}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    tag: str,
    description: str = "",
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    auth: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {"tags": [tag], "summary": summary, "responses": dict(responses)}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    if auth:
        for status, response in COMMON_ERRORS.items():  # an operation's own answer for a status wins
            op["responses"].setdefault(status, response)
    else:
        op["security"] = []
    return op


def _paths() -> dict[str, Any]:
    return {
        "/v1/files": {
            "post": _op(
                "Upload a file",
                {
                    "201": _json(_ref("File"), "stored and scanned"),
                    "400": _error("missing file part, bad or missing purpose, unknown form field"),
                    "409": _error("idempotency_conflict"),
                    "413": _error("file_too_large"),
                    "415": _error(
                        "not multipart, unsupported file type, or not UTF-8 text (invalid_encoding)"
                    ),
                    "422": _error("empty_file, no_valid_records, too_many_records"),
                },
                tag="files",
                description=(
                    "Streamed to object storage while it is counted; never held whole in memory. "
                    "Nothing is kept when the upload is refused."
                ),
                parameters=[IDEMPOTENCY],
                body={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["file", "purpose"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "purpose": {"enum": list(objects.UPLOAD_PURPOSES)},
                                    "retention_days": RETENTION_DAYS,
                                },
                            }
                        }
                    },
                },
            ),
            "get": _op(
                "List files, newest first",
                {
                    "200": _json(_ref("FileList"), "a page of files"),
                    "400": _error("bad limit, cursor or purpose"),
                },
                tag="files",
                parameters=[
                    *PAGE_PARAMS,
                    _query("purpose", {"enum": list(objects.PURPOSES)}, "only files of this purpose"),
                ],
            ),
        },
        "/v1/files/{file_id}": {
            "get": _op(
                "Get a file",
                {"200": _json(_ref("File"), "the file"), "404": _error("file_not_found")},
                tag="files",
                parameters=[FILE_ID],
            ),
            "delete": _op(
                "Delete a file and its bytes",
                {
                    "200": _json(_ref("Deleted"), "deleted"),
                    "404": _error("file_not_found"),
                    "409": _error("file_in_use: the input of a job that has not finished"),
                },
                tag="files",
                parameters=[FILE_ID],
            ),
        },
        "/v1/files/{file_id}/content": {
            "get": _op(
                "Download a file's bytes",
                {
                    "200": {"description": "the bytes", "content": BYTES_CONTENT},
                    "302": {"description": "with ?redirect=true on S3 storage: a presigned URL (5 minutes)"},
                    "404": _error("file_not_found"),
                },
                tag="files",
                parameters=[FILE_ID, _query("redirect", {"type": "boolean", "default": False}, "302 to S3")],
            ),
        },
        "/v1/jobs": {
            "post": _op(
                "Submit a job",
                {
                    "200": _json(_ref("DryRun"), "dry_run=true: what the job would do; nothing created"),
                    "202": _json(_ref("Job"), "queued"),
                    "400": _error(
                        "invalid_json, unknown_field, forbidden_field, field_required, invalid_type, "
                        "invalid_value, unsupported_job_type, model_task_mismatch, invalid_file_purpose, "
                        "not_a_train_job (model train:<job_id> names a job that is not a train job), "
                        "unsupported_output_format, unsupported_param (params.explain on a task or job "
                        "type that cannot explain)"
                    ),
                    "404": _error("model_not_found, file_not_found, job_not_found (model train:<job_id>)"),
                    "409": _error(
                        "idempotency_conflict; training_failed: model train:<job_id> names a train job "
                        "that failed, was cancelled or expired (the message says why); "
                        "training_not_finished: dry_run with model train:<job_id> before it succeeded"
                    ),
                    "413": _error("request_too_large (over 1 MiB)"),
                    "422": _error(
                        "missing_field: the input file has no record field / column the task reads"
                    ),
                },
                tag="jobs",
                description="Committed first, then sent to the workers; a broker outage does not fail it.",
                parameters=[
                    IDEMPOTENCY,
                    _query(
                        "dry_run",
                        {"type": "boolean", "default": False},
                        "predict only: validate, parse and tokenize the file (20 MB whole, else sampled)",
                    ),
                ],
                body={"required": True, "content": {"application/json": {"schema": _ref("JobCreate")}}},
            ),
            "get": _op(
                "List jobs, newest first",
                {
                    "200": _json(_ref("JobList"), "a page of jobs"),
                    "400": _error("bad filter, limit or cursor"),
                },
                tag="jobs",
                parameters=[
                    *PAGE_PARAMS,
                    _query(
                        "status",
                        {"type": "string", "pattern": STATUS_LIST_PATTERN},
                        "one or more states, comma-separated",
                    ),
                    _query("type", {"enum": list(objects.JOB_TYPES)}, "only jobs of this type"),
                ],
            ),
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "Get a job",
                {"200": _json(_ref("Job"), "the job"), "404": _error("job_not_found")},
                tag="jobs",
                parameters=[JOB_ID],
            ),
            "delete": _op(
                "Delete an ended job and everything it stored (parts, results, manifest, checkpoints)",
                {
                    "200": _json(_ref("Deleted"), "deleted: its objects and rows are gone; GET answers 404"),
                    "404": _error("job_not_found"),
                    "409": _error("job_not_finished (cancel it first) or job_in_use (a live job needs it)"),
                },
                tag="jobs",
                parameters=[JOB_ID],
            ),
        },
        "/v1/jobs/{job_id}/events": {
            "get": _op(
                "The job's event log, oldest first",
                {
                    "200": _json(_ref("JobEventList"), "a page of events"),
                    "400": _error("bad limit or cursor"),
                    "404": _error("job_not_found"),
                },
                tag="jobs",
                parameters=[JOB_ID, *PAGE_PARAMS],
            ),
        },
        "/v1/jobs/{job_id}/retry": {
            "post": _op(
                "Retry only what failed: a child job over some of the job's records, same ids",
                {
                    "202": _json(
                        _ref("Job"),
                        "the child job (parent_job, retry_of); its input is built from the parent when it"
                        " is planned, and its retry_input event says how many records it runs and how"
                        " many cannot be retried because they do not parse or repeat an earlier id",
                    ),
                    "400": _error("invalid_json, unknown_field, field_required, invalid_value (only)"),
                    "404": _error("job_not_found"),
                    "409": _error(
                        "job_not_finished, job_not_retryable (not a predict job), job_not_expired / "
                        "job_not_cancelled, nothing_to_retry, input_file_missing, error_file_missing, "
                        "model_not_found, idempotency_conflict"
                    ),
                },
                tag="jobs",
                parameters=[JOB_ID, IDEMPOTENCY],
                body={"required": True, "content": {"application/json": {"schema": _ref("RetryCreate")}}},
            ),
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": _op(
                "Cancel a job",
                {
                    "202": _json(_ref("Job"), "cancelling (already cancelling: the same)"),
                    "404": _error("job_not_found"),
                    "409": _error("job_not_cancellable: the job has finished"),
                },
                tag="jobs",
                parameters=[JOB_ID],
            ),
        },
        "/v1/jobs/{job_id}/results": {
            "get": _op(
                "The output file's bytes, or with cursor/limit the lines finished so far",
                {
                    "200": {
                        "description": (
                            "one JSON line per usable record, in input order; with cursor or limit, a page"
                            " of the finished parts' lines up to the first unfinished part, and the next"
                            " cursor in X-Next-Cursor (absent once the job is over and all was served)"
                        ),
                        "headers": {
                            "X-Next-Cursor": {
                                "schema": {"type": "string"},
                                "description": "paged mode: the cursor of the next page",
                            }
                        },
                        "content": JSONL_CONTENT,
                    },
                    "400": _error("invalid_cursor, invalid_value (limit, merged; merged with cursor)"),
                    "404": _error("job_not_found"),
                    "409": _error(
                        "job_not_finished (whole-file mode only); retry_not_finished (merged: a retry of"
                        " the job has not ended)"
                    ),
                },
                tag="jobs",
                parameters=[
                    JOB_ID,
                    _query("cursor", {"type": "string"}, "paged mode: opaque; empty = from the first line"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
                        "paged mode: lines per page",
                    ),
                    _query(
                        "merged",
                        {"type": "boolean", "default": False},
                        "the output with the lines of the job's ended retries (POST .../retry) in place of"
                        " the records they reran, in input order (header X-Retry-Jobs); a job without"
                        " retries: its output",
                    ),
                ],
            ),
        },
        "/v1/jobs/{job_id}/errors": {
            "get": _op(
                "The error file's bytes",
                {
                    "200": {
                        "description": (
                            '{"id","line","index","error":{"code","message"}} per bad record (index:'
                            " its 0-based position among the records; duplicate_id: a record whose id an"
                            " earlier record of the file has); empty if none"
                        ),
                        "content": JSONL_CONTENT,
                    },
                    "404": _error("job_not_found"),
                    "409": _error("job_not_finished"),
                },
                tag="jobs",
                parameters=[JOB_ID],
            ),
        },
        "/v1/jobs/{job_id}/manifest": {
            "get": _op(
                "The job's reproducibility record (manifest.json beside its results)",
                {
                    "200": _json(_ref("Manifest"), "the manifest"),
                    "404": _error("job_not_found, manifest_not_found (the job is not finalized yet)"),
                },
                tag="jobs",
                parameters=[JOB_ID],
            ),
        },
        "/v1/models": {
            "get": _op(
                "List the built-in models and the tenant's",
                {"200": _json(_ref("ModelList"), "all models (one page)")},
                tag="models",
            ),
        },
        "/v1/models/{model}": {
            "get": _op(
                "Get a model (name) or one version (name:version)",
                {
                    "200": _json(
                        {"oneOf": [_ref("Model"), _ref("ModelVersion")]}, "the model or the version"
                    ),
                    "400": _error("not a model reference"),
                    "404": _error("model_not_found"),
                },
                tag="models",
                parameters=[MODEL],
            ),
            "delete": _op(
                "Delete a model version (name:version)",
                {
                    "200": _json(_ref("Deleted"), "deleted: it no longer resolves, its weights are removed"),
                    "400": _error("version_required"),
                    "404": _error("model_not_found"),
                    "409": _error("model_in_use (a job that has not finished uses it) or model_builtin"),
                },
                tag="models",
                parameters=[MODEL],
            ),
        },
        "/v1/webhook_secret": {
            "get": _op(
                "The secret that signs this tenant's webhooks (made on first use)",
                {"200": _json(_ref("WebhookSecret"), "the secret")},
                tag="webhooks",
            ),
        },
        "/v1/webhook_secret/rotate": {
            "post": _op(
                "Replace the webhook secret; deliveries from now on are signed with the new one",
                {"200": _json(_ref("WebhookSecret"), "the new secret")},
                tag="webhooks",
            ),
        },
        "/v1/batches": {
            "post": _op(
                "Create an OpenAI batch",
                {
                    "200": _json(_ref("Batch"), "validating: the batch's job is queued"),
                    "400": _error(
                        "invalid_json, unknown_field, field_required, invalid_type, unsupported_endpoint, "
                        "invalid_value (completion_window, metadata), invalid_file_purpose, "
                        "model_task_mismatch"
                    ),
                    "404": _error("file_not_found, model_not_found (the model the requests ask for)"),
                    "409": _error("idempotency_conflict"),
                    "413": _error("request_too_large"),
                    "422": _error("invalid_file_format, no_valid_requests (none in the head of the file)"),
                },
                tag="openai",
                description=(
                    "OpenAI's Batch API for the official SDKs. The head of the file is read for the model: "
                    "the batch runs the first one its requests name that does embeddings; lines that "
                    "don't parse, name another url, method or model, or lack input become error lines."
                ),
                parameters=[IDEMPOTENCY],
                body={"required": True, "content": {"application/json": {"schema": _ref("BatchCreate")}}},
            ),
            "get": _op(
                "List batches, newest first",
                {"200": _json(_ref("BatchList"), "a page of batches"), "400": _error("bad limit or after")},
                tag="openai",
                parameters=[
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
                        "page size",
                    ),
                    _query("after", {"type": "string"}, "the last batch id of the previous page"),
                    _query("cursor", {"type": "string"}, "the same as after"),
                ],
            ),
        },
        "/v1/batches/{batch_id}": {
            "get": _op(
                "Get a batch",
                {"200": _json(_ref("Batch"), "the batch"), "404": _error("batch_not_found")},
                tag="openai",
                parameters=[BATCH_ID],
            ),
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": _op(
                "Cancel a batch",
                {
                    "200": _json(_ref("Batch"), "cancelling (already cancelling: the same)"),
                    "404": _error("batch_not_found"),
                    "409": _error("batch_not_cancellable: the batch has finished"),
                },
                tag="openai",
                parameters=[BATCH_ID],
            ),
        },
        "/v1/embeddings": {
            "post": _op(
                "Embed a few texts now (OpenAI's embeddings endpoint)",
                {
                    "200": _json(_ref("Embeddings"), "one embedding per input, in order"),
                    "400": _error(
                        "invalid_json, unknown_parameter, missing_model, missing_input, invalid_input, "
                        "unsupported_input (token arrays), invalid_encoding_format, unsupported_dimensions, "
                        "input_too_long (over 8192 tokens), model_task_mismatch"
                    ),
                    "404": _error("model_not_found"),
                    "413": _error("too_many_inputs (over 256), request_too_large (over 1 MiB)"),
                    "503": {
                        **_error(
                            f"{ErrorCode.EMBEDDER_UNAVAILABLE.value}: the embedder process did not answer "
                            "within INFERQ_EMBEDDINGS_TIMEOUT_SECONDS (Retry-After says when to try again); "
                            "also database unavailable"
                        ),
                        "headers": {
                            "Retry-After": {
                                **RETRY_AFTER["Retry-After"],
                                "required": False,
                                "description": "seconds to wait (sent with embedder_unavailable)",
                            }
                        },
                    },
                },
                tag="openai",
                description=(
                    "Run in the API process on the CPU with the workers' code: the same vectors as a job. "
                    "For more texts, submit a job or a batch."
                ),
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("EmbeddingsCreate")}},
                },
            ),
        },
        "/healthz": {
            "get": _op(
                "Liveness",
                {"200": _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "alive")},
                tag="operations",
                auth=False,
            ),
        },
        "/readyz": {
            "get": _op(
                "Readiness: database, broker and storage reachable",
                {
                    "200": _json(_ref("Readiness"), "ready"),
                    "503": _json(_ref("Readiness"), "a dependency is down; `checks` says which"),
                },
                tag="operations",
                auth=False,
            ),
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {}}}}},
                tag="operations",
                auth=False,
            ),
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                tag="operations",
                auth=False,
            ),
        },
        "/docs": {
            "get": _op(
                "Human-readable API docs",
                {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
                tag="operations",
                auth=False,
            ),
        },
        "/ui": {
            "get": _op(
                "The dashboard",
                {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
                tag="operations",
                description=(
                    "A page that asks for an API key and shows the tenant's jobs from the `/v1` endpoints: "
                    "live progress, rate, ETA, events, throughput, downloads and cancel."
                ),
                auth=False,
            ),
        },
        "/ui/static/{filename}": {
            "get": _op(
                "The dashboard's script and stylesheet",
                {
                    "200": {
                        "description": "the file",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    "404": _error("no such file"),
                },
                tag="operations",
                parameters=[_path_param("filename", "ui.js or ui.css")],
                auth=False,
            ),
        },
    }


@functools.lru_cache(maxsize=1)
def _document_json() -> str:
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "inferq",
            "version": "1",
            "description": (
                "Bulk ML jobs: upload records, run models on GPU workers, download results. Every error "
                'is {"error": {"code", "message", "field"}}. Lists are {"data", "has_more", "next_cursor"}.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "files", "description": "Upload and download records"},
            {"name": "jobs", "description": "Prediction jobs"},
            {"name": "models", "description": "Built-in and trained models"},
            {"name": "openai", "description": "OpenAI-compatible batches and embeddings"},
            {"name": "webhooks", "description": "Signed POSTs of a job's object when it ends"},
            {
                "name": "operations",
                "description": "Health, readiness, metrics, docs and the dashboard (no auth)",
            },
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an inferq API key"}
            },
            "schemas": model_schemas(),
        },
    }
    return json.dumps(document)


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may not change the cached one)."""
    document: dict[str, Any] = json.loads(_document_json())
    return document


# ---- /docs -------------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{margin:0 0 4px} h2{margin-top:36px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
.op{background:#fff;border:1px solid #d8dde6;border-radius:6px;margin:14px 0;padding:12px 16px}
.method{display:inline-block;min-width:64px;font-weight:700;text-transform:uppercase;font-family:monospace}
.get{color:#0a6} .post{color:#06c} .delete{color:#c22}
code,.path{font-family:ui-monospace,monospace} .path{font-weight:600}
table{border-collapse:collapse;width:100%;margin:6px 0} td,th{border-top:1px solid #eef0f4;padding:3px 8px;
text-align:left;vertical-align:top} th{font-weight:600;color:#556}
.muted{color:#667} .schema{font-family:ui-monospace,monospace;font-size:13px}
"""


def _type_of(schema: Schema) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    for union in ("oneOf", "anyOf"):
        if union in schema:
            return " | ".join(_type_of(s) for s in schema[union])
    if "const" in schema:
        return html.escape(json.dumps(schema["const"]))
    if "enum" in schema:
        return " | ".join(html.escape(json.dumps(v)) for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type_of(schema['items'])}"
    limits = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "maxLength", "maxProperties") if k in schema]
    return html.escape(kind + (f" ({', '.join(limits)})" if limits else ""))


def _properties_table(schema: Schema) -> str:
    props: dict[str, Schema] = schema.get("properties", {})
    if not props:
        return f'<p class="schema">{_type_of(schema)}</p>'
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code>{' *' if name in required else ''}</td>"
        f'<td class="schema">{_type_of(prop)}</td>'
        f"<td>{html.escape(str(prop.get('description', '')))}</td></tr>"
        for name, prop in props.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>notes</th></tr>{rows}</table>"


def _operation_html(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [
        f'<div class="op"><span class="method {method}">{method}</span> '
        f'<span class="path">{html.escape(path)}</span>'
        f" — {html.escape(op.get('summary', ''))}"
    ]
    if op.get("security") == []:
        parts.append(' <span class="muted">(no auth)</span>')
    if op.get("description"):
        parts.append(f"<p>{html.escape(op['description'])}</p>")
    if op.get("parameters"):
        param_rows = "".join(
            f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(p['in'])}</td>"
            f'<td class="schema">{_type_of(p.get("schema", {}))}</td>'
            f"<td>{html.escape(p.get('description', ''))}</td></tr>"
            for p in op["parameters"]
        )
        parts.append(
            f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>notes</th></tr>{param_rows}</table>"
        )
    body = op.get("requestBody")
    if body:
        for media, content in body["content"].items():
            parts.append(f'<p class="muted">body <code>{html.escape(media)}</code></p>')
            parts.append(_properties_table(content["schema"]))
    rows: list[str] = []
    for status, response in op["responses"].items():
        contents: list[dict[str, Any]] = list(response.get("content", {}).values())
        schema: Schema = contents[0].get("schema", {}) if contents else {}
        shape = _type_of(schema) if schema else ""
        rows.append(
            f"<tr><td><code>{html.escape(status)}</code></td><td>{html.escape(response['description'])}</td>"
            f'<td class="schema">{shape}</td></tr>'
        )
    parts.append(f"<table><tr><th>status</th><th>meaning</th><th>body</th></tr>{''.join(rows)}</table></div>")
    return "".join(parts)


def docs_html(document: dict[str, Any]) -> str:
    """The whole document as one HTML page: operations by tag, then the schemas."""
    info = document["info"]
    sections = []
    for tag in document["tags"]:
        ops = [
            _operation_html(path, method, op)
            for path, methods in document["paths"].items()
            for method, op in methods.items()
            if tag["name"] in op.get("tags", [])
        ]
        sections.append(
            f"<h2>{html.escape(tag['name'])}</h2>"
            f"<p class='muted'>{html.escape(tag['description'])}</p>{''.join(ops)}"
        )
    schemas = "".join(
        f'<div class="op" id="schema-{html.escape(name)}"><span class="path">{html.escape(name)}</span>'
        f"{_properties_table(schema)}</div>"
        for name, schema in document["components"]["schemas"].items()
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(info['title'])} API</title><style>{CSS}</style></head><body><main>"
        f"<h1>{html.escape(info['title'])} API</h1><p>{html.escape(info['description'])}</p>"
        "<p>Authenticate with <code>Authorization: Bearer &lt;api key&gt;</code>. "
        "The machine-readable document is <a href='/openapi.json'>/openapi.json</a>.</p>"
        f"{''.join(sections)}<h2>schemas</h2>{schemas}</main></body></html>"
    )
