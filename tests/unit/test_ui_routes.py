"""The dashboard's files as the app serves them (no auth, strict content security policy), and the script's
rule that server data never becomes HTML. The page itself runs in Chromium in tests/e2e/test_dashboard.py."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from inferq.api.routes.ui import STATIC_DIR
from inferq.shared.settings import Settings
from tests.helpers.api_client import ApiClient

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_and_its_files_are_served_without_a_key(
    make_client: Callable[[Settings], ApiClient], embedded_settings: Settings
) -> None:
    # given: the app, and no Authorization header
    client = make_client(embedded_settings).client

    # when
    page = client.get("/ui")
    script = client.get("/ui/static/ui.js")
    style = client.get("/ui/static/ui.css")

    # then: the page names its own script and stylesheet, which are served with their types
    assert page.status_code == 200
    assert page.content_type == "text/html; charset=utf-8"
    html = page.get_data(as_text=True)
    assert 'src="/ui/static/ui.js"' in html and 'href="/ui/static/ui.css"' in html
    assert script.status_code == 200 and script.mimetype in ("text/javascript", "application/javascript")
    assert style.status_code == 200 and style.mimetype == "text/css"
    # and: nothing inline or from elsewhere may run on it
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in html and " style=" not in html and re.search(r"\son\w+=", html) is None


def test_files_outside_the_static_folder_or_missing_answer_404_in_the_error_shape(
    make_client: Callable[[Settings], ApiClient], embedded_settings: Settings
) -> None:
    # given
    client = make_client(embedded_settings).client

    # when
    answers = [
        client.get(p)
        for p in ("/ui/static/nope.js", "/ui/static/../routes/ui.py", "/ui/static/%2e%2e/app.py")
    ]

    # then
    for r in answers:
        assert r.status_code == 404
        assert r.get_json()["error"]["code"] == "not_found"


def test_the_script_never_turns_strings_into_html() -> None:
    # given
    script = (STATIC_DIR / "ui.js").read_text("utf-8")

    # when: the sinks that parse HTML are looked for
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)

    # then: there are none; strings reach the page through textContent
    assert sinks == []
    assert "textContent" in script


def test_the_static_files_are_package_data() -> None:
    # given: the package-data patterns of `inferq.api` (tomllib: Python 3.11+)
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["inferq.api"]

    # when
    files = sorted(p.relative_to(ROOT / "api").as_posix() for p in STATIC_DIR.iterdir() if p.is_file())

    # then: every file the dashboard needs is installed with the package
    assert {"static/ui.html", "static/ui.js", "static/ui.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files)
