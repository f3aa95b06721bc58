"""The repository documents itself: its contract and design live in docs/, and nothing points outside it."""

from __future__ import annotations

import json
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


FENCE = re.compile(r"^(```|~~~)")
TOC_LINK = re.compile(r"\]\(#([\w-]+)\)")


def readme_sections(text: str) -> list[str]:
    """The GitHub anchors of the README's `## ` headings, in order (lines in code blocks are not headings)."""
    anchors, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and line.startswith("## "):
            title = line[3:].strip().lower()
            anchors.append(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def readme_toc(text: str) -> list[str]:
    """The anchors the table of contents links: the list of `#` links before the first `## ` heading."""
    head = text.split("\n## ", 1)[0]
    return TOC_LINK.findall(head)


def test_readme_table_of_contents_lists_every_section_in_order() -> None:
    # given the README
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # when its `## ` sections and the links of its table of contents are read
    sections, toc = readme_sections(readme), readme_toc(readme)
    # then every section has a link and every link a section, in the order they come
    assert [a for a in sections if a not in toc] == [], "sections missing from the table of contents"
    assert [a for a in toc if a not in sections] == [], "table of contents links to no section"
    assert toc == sections


def test_readme_anchor_is_githubs() -> None:
    # given headings with punctuation, then their anchors are GitHub's (punctuation dropped, spaces dashed)
    text = "## Privacy: retention, deletion\n```\n## not a heading\n```\n## Run it\n"
    assert readme_sections(text) == ["privacy-retention-deletion", "run-it"]


def readme_section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def chart_numbers() -> dict[str, float]:
    """What benchmarks/results/throughput.png draws, by a word of its bar: the saved runs that
    `benchmarks/e2e_distributed.py` draws it from (e2e.json, direct_loops.json, ray_data.json)."""
    results = ROOT / "benchmarks" / "results"
    e2e = json.loads((results / "e2e.json").read_text("utf-8"))
    loops = json.loads((results / "direct_loops.json").read_text("utf-8"))["results"]
    ray = json.loads((results / "ray_data.json").read_text("utf-8"))
    return {
        "sentence-transformers": e2e["st_fp32"],
        "direct loop": e2e["best"],
        "end to end": e2e["e2e"],
        "batch 1": loops["batch1"]["records_per_s"],
        "HF loop": loops["naive32"]["records_per_s"],
        "Ray Data": ray["records_per_s"],
    }


def test_readme_performance_table_states_the_numbers_the_chart_draws() -> None:
    # given the README's Performance section, which shows the throughput chart
    section = readme_section((ROOT / "README.md").read_text(encoding="utf-8"), "Performance")
    assert "(benchmarks/results/throughput.png)" in section
    rows = [[c.strip().strip("*") for c in line.split("|")[1:-1]] for line in section.splitlines()]
    # when each bar's number is looked up in the table row of that bar
    stated = {}
    for bar in chart_numbers():
        row = next((r for r in rows if len(r) > 1 and bar in r[0]), None)
        assert row is not None, f"no row of the Performance table for the chart's bar {bar!r}"
        stated[bar] = row[1]
    # then the table states the number the chart draws, from the same run
    assert stated == {bar: f"{value:.1f}" for bar, value in chart_numbers().items()}
