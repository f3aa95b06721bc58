"""The repository documents itself: its contract and design live in docs/, and nothing points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A relative link that climbs out of the checkout into the folder beside it (its shared documents).
OUTSIDE_LINK = re.compile(r"(?<![\w.])\.\./(?:\.\./)*(?:shared|DEVELOPERS|API|ARCHITECTURE)[\w./-]*")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    suffixes = {".py", ".md", ".toml", ".yml", ".yaml", ".js", ".html", ".cfg", ".ini", ""}
    return [ROOT / p for p in out.splitlines() if Path(p).suffix in suffixes and (ROOT / p).is_file()]


def test_no_tracked_file_links_outside_the_repository() -> None:
    # given every tracked text file
    offenders = []
    for path in tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        # when its relative links are read
        for match in OUTSIDE_LINK.finditer(text):
            offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    # then none leaves the checkout
    assert offenders == []


def test_readme_links_the_contract_and_the_design_in_docs() -> None:
    # given the README
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # then it links both documents inside the repository, and both exist
    for doc in ("docs/API.md", "docs/ARCHITECTURE.md"):
        assert f"]({doc})" in readme
        assert (ROOT / doc).is_file()
