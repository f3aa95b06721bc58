"""The one reader of JSON request bodies (`POST /v1/jobs`, `/v1/batches`, `/v1/embeddings`, retries).

A body is refused with 400 `invalid_json` unless it is at most `MAX_BODY_BYTES` (else 413), valid JSON,
nested at most `MAX_DEPTH` levels (a real body needs three; code that walks a body, such as the
idempotency hash, recurses, so a deeper one could exhaust the stack), and every string in it, keys
included, is valid Unicode: a lone UTF-16 surrogate (`"\\ud800"`, or its raw UTF-8 bytes) parses in
Python but cannot be encoded to UTF-8, so it would fail whatever hashes, stores or tokenizes it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from inferq.shared.errors import InvalidRequest, TooLarge

MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32
READ_CHUNK = 64 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_json")


def _check_tree(value: Any, max_depth: int) -> None:
    """Depth and strings of a parsed body, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _invalid(
                    "the body has a string with a lone UTF-16 surrogate, which is not valid Unicode"
                )
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > max_depth:
            raise _invalid(f"the body is nested more than {max_depth} levels deep")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """`raw` parsed as JSON and checked as the module says, or 400 `invalid_json`."""
    if not raw.strip():
        raise _invalid("the body must be a JSON object")
    try:
        value = json.loads(raw)
    except RecursionError as e:  # deeper than the parser's own stack allows
        raise _invalid(f"the body is nested more than {max_depth} levels deep") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"the body is not valid JSON: {e}") from e
    _check_tree(value, max_depth)
    return value


def json_body() -> Any:
    """The request body parsed by `parse_json` (any content type); 413 over `MAX_BODY_BYTES`."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes", code="request_too_large")
    buffer = bytearray()
    while chunk := request.stream.read(READ_CHUNK):
        buffer.extend(chunk)
        if len(buffer) > MAX_BODY_BYTES:
            raise TooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes", code="request_too_large")
    return parse_json(bytes(buffer))
