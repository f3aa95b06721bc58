"""`POST /v1/embeddings`: OpenAI's embeddings endpoint, answered at once for small inputs.

For large inputs use a job or a batch: this endpoint takes at most `MAX_EMBEDDING_INPUTS` texts of at most
8192 tokens each, and forwards them to the embedder process (`api.embedder`), which batches them
with whatever other requests wait and answers within `INFERQ_EMBEDDINGS_TIMEOUT_SECONDS` (else 503).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from inferq.api import embedder
from inferq.api.auth import require_auth
from inferq.api.context import current_settings, db, tenant_id
from inferq.api.contract.requests import MAX_EMBEDDING_INPUTS
from inferq.api.request_json import json_body
from inferq.shared import registry
from inferq.shared.errors import InferqError
from inferq.shared.openai_embeddings import RequestError, check_dimensions, parse_request, response_body
from inferq.shared.tasks import EMBEDDING

bp = require_auth(Blueprint("embeddings", __name__, url_prefix="/v1/embeddings"))


@bp.post("")
def create_embeddings() -> dict[str, Any]:
    body = json_body()
    try:
        req = parse_request(body, max_inputs=MAX_EMBEDDING_INPUTS, too_many_status=413)
    except RequestError as e:
        raise InferqError(e.message, field=e.param, code=e.code, status=e.status) from e
    with db() as session:
        model = registry.resolve(session, tenant_id(), req.model, EMBEDDING)
    try:
        check_dimensions(req, model.config.get("dimensions"), model.ref)
    except RequestError as e:
        raise InferqError(e.message, field=e.param, code=e.code, status=e.status) from e
    result = embedder.embed(current_settings(), model, req.inputs)
    return response_body(req.model, result.vectors, result.tokens, req.encoding_format)
