"""The dashboard: one HTML page, its script and its stylesheet, served without auth.

The page holds no data of its own: it asks for the API key in the browser and reads everything from the
`/v1` JSON endpoints with `Authorization: Bearer <key>`, so serving these files reveals nothing.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory
from werkzeug.wrappers import Response

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PAGE = "ui.html"

# Only the page's own files; data from its own origin; nothing inline, nothing framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

bp = Blueprint("ui", __name__, url_prefix="/ui")


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("")
def page() -> Response:
    response = send_from_directory(STATIC_DIR, PAGE, mimetype="text/html")
    response.content_type = "text/html; charset=utf-8"
    return _secured(response)


@bp.get("/static/<path:filename>")
def static_file(filename: str) -> Response:
    """A file of `api/static/` (404 for anything outside it or missing)."""
    response = send_from_directory(STATIC_DIR, filename)
    mimetype = response.mimetype or ""
    if mimetype.startswith("text/") or mimetype == "application/javascript":
        response.content_type = f"{mimetype}; charset=utf-8"
    return _secured(response)
