"""The repository explains itself: README and the dbt project link to docs/metrics.md and
docs/protocol.md sections that exist, never to files outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("metrics.md", "protocol.md")
LINK = re.compile(r"docs/(metrics|protocol)\.md#([a-z0-9-]+)")
SIBLING_LINK = re.compile(r"\]\((metrics|protocol)\.md#([a-z0-9-]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", markdown, re.M)}


def sources() -> dict[Path, str]:
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
             *(ROOT / "dbt_project").rglob("*.yml"), *(ROOT / "dbt_project").rglob("*.sql")]
    return {path: path.read_text() for path in files if "target" not in path.parts}


def test_every_docs_link_names_an_existing_section() -> None:
    known = {doc: anchors((ROOT / "docs" / doc).read_text()) for doc in DOCS}
    broken = []
    for path, text in sources().items():
        links = LINK.findall(text)
        if path.parent.name == "docs":
            links += SIBLING_LINK.findall(text)
        broken += [f"{path.relative_to(ROOT)}: {doc}.md#{anchor}" for doc, anchor in links
                   if anchor not in known[f"{doc}.md"]]
    assert broken == []


def test_nothing_links_outside_the_repository() -> None:
    assert [str(p.relative_to(ROOT)) for p, text in sources().items()
            if "shared/docs" in text] == []


def test_every_mart_description_points_to_the_metric_definitions() -> None:
    """The marts implementing a definition of metrics.md say which one."""
    marts = ROOT / "dbt_project" / "models" / "marts"
    for name in ("sessions.yml", "daily_metrics.yml", "funnel_steps.yml", "retention.yml",
                 "profiles.yml"):
        assert LINK.search((marts / name).read_text()), name


def test_anchor_rule() -> None:
    assert anchors("## Figures over a range\n### Limits of one message\n## The marts contract") \
        == {"figures-over-a-range", "limits-of-one-message", "the-marts-contract"}
