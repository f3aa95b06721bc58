"""Writes the light client's types (`inferq/contract_types.py`) from the contract models' JSON Schemas.

The client must not import pydantic (its bare install is httpx, orjson and click), so its types are
plain `TypedDict`s generated here, one per component of `api.contract.schemas`, and checked in.
tests/unit/test_contract_codegen.py fails when the checked-in file is stale; regenerate it with

    PYTHONPATH=. python -m inferq.api.contract.codegen
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from inferq.api.contract.schemas import REF_TEMPLATE, model_schemas

log = logging.getLogger(__name__)

Schema = dict[str, Any]
TARGET = Path(__file__).resolve().parents[2] / "inferq" / "contract_types.py"
REF_PREFIX = REF_TEMPLATE.split("{", 1)[0]
PRIMITIVES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
HEADER = '''"""The HTTP contract's types for the client, generated from the server's contract models
(`inferq.api.contract`) by `python -m inferq.api.contract.codegen`. Do not edit: regenerate.

Request bodies and the objects the API answers with, as `TypedDict`s: no pydantic needed.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict
'''
LINE = 110  # ruff's line length: the generated file is formatted as ruff formats it


def python_type(schema: Schema, known: set[str]) -> str:
    """The Python annotation for a JSON Schema, as generated code."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(REF_PREFIX)
        return name if name in known else "dict[str, Any]"
    if "const" in schema:
        return f"Literal[{json.dumps(schema['const'])}]".replace("true", "True").replace("false", "False")
    if "enum" in schema:
        return f"Literal[{', '.join(json.dumps(v) for v in schema['enum'])}]"
    for union in ("anyOf", "oneOf"):
        if union in schema:
            parts = list(dict.fromkeys(python_type(s, known) for s in schema[union]))
            return " | ".join(parts)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(PRIMITIVES.get(k, "Any") for k in kind)
    if kind == "array":
        return f"list[{python_type(schema.get('items', {}), known)}]"
    if kind == "object":
        extra = schema.get("additionalProperties")
        value = python_type(extra, known) if isinstance(extra, dict) else "Any"
        return f"dict[str, {value}]"
    return PRIMITIVES.get(str(kind), "Any")


def _typed_dict(name: str, schema: Schema, known: set[str]) -> str:
    properties: dict[str, Schema] = schema.get("properties", {})
    required = [p for p in properties if p in set(schema.get("required", []))]
    optional = [p for p in properties if p not in required]
    doc = str(schema.get("description", "")).strip().replace('"""', "'''").replace("\n", "\n    ")
    doc_line = f'    """{doc}"""\n\n' if doc else ""

    def body(names: list[str]) -> str:
        return "".join(_field(p, python_type(properties[p], known)) for p in names) or "    pass\n"

    if not optional:
        return f"class {name}(TypedDict):\n{doc_line}{body(required)}"
    if not required:
        return f"class {name}(TypedDict, total=False):\n{doc_line}{body(optional)}"
    base = f"_{name}Required"
    return (
        f"class {base}(TypedDict):\n{body(required)}\n\n"
        f"class {name}({base}, total=False):\n{doc_line}{body(optional)}"
    )


def _field(name: str, annotation: str) -> str:
    """One field line, wrapped as ruff wraps a long `Literal[...]`."""
    line = f"    {name}: {annotation}"
    if len(line) <= LINE or not annotation.startswith("Literal[") or not annotation.endswith("]"):
        return line + "\n"
    inner = annotation[len("Literal[") : -1]
    if 8 + len(inner) <= LINE:
        return f"    {name}: Literal[\n        {inner}\n    ]\n"
    items = "".join(f"        {item},\n" for item in inner.split(", "))
    return f"    {name}: Literal[\n{items}    ]\n"


def render() -> str:
    """The whole generated module."""
    schemas = model_schemas()
    known = set(schemas)
    items = sorted(schemas.items())
    classes = [_typed_dict(n, s, known) for n, s in items if "properties" in s]
    aliases = [f"{n} = {python_type(s, known)}\n" for n, s in items if "properties" not in s]
    return HEADER + "\n\n" + "\n\n".join(classes) + "\n\n" + "".join(aliases)


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    log.info("wrote %s", TARGET)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
