"""The import graph points one way: ground → stores → features → entry points (issue 19).

Computed from the source with ``ast`` (every ``import`` and ``from ... import``, also the lazy
ones inside functions, which are arrows all the same); docs/architecture.md draws the picture.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GROUND, STORES, FEATURES, ENTRY = 0, 1, 2, 3
NAMES = {GROUND: "ground", STORES: "stores", FEATURES: "features", ENTRY: "entry points"}

# Longest prefix wins. The ground is trackhouse/ minus its CLI (settings, dbt environment,
# contracts, ClickHouse URL parsing); warehouse.client is the client factory every layer uses.
LAYERS: dict[str, int] = {
    "trackhouse": GROUND,
    "sdk": GROUND,
    "accounts": STORES,
    "warehouse": STORES,
    "queries": FEATURES,
    "collector": FEATURES,
    "importers": FEATURES,
    "lifecycle": FEATURES,
    "alerts": FEATURES,
    "readapi": FEATURES,
    "orchestration": FEATURES,
    "app": ENTRY,
    "demo": ENTRY,  # demo traffic: an HTTP client of the collector, run by the CLI
    "trackhouse.cli": ENTRY,
}
PACKAGES = {name.split(".")[0] for name in LAYERS}

# Pairs inside one layer that must not know each other either.
FORBIDDEN = {
    ("accounts", "warehouse"),  # accounts depends on settings alone (ADR 0027)
    ("warehouse", "accounts"),
    ("lifecycle", "orchestration"),  # orchestration schedules lifecycle, not the other way
    ("app", "collector"),  # the dashboards share no runtime with the ingestion service
}


def layer_of(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every Trackhouse module ``path`` imports (relative imports resolved)."""
    found: set[str] = set()
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def graph() -> dict[tuple[str, str], set[str]]:
    """(importing layer key, imported layer key) → the importing modules."""
    arrows: dict[tuple[str, str], set[str]] = defaultdict(set)
    for package in sorted(PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = module_name(path)
            src_key, _ = layer_of(source)
            for target in imports(path):
                tgt_key, _ = layer_of(target)
                if tgt_key != src_key:
                    arrows[(src_key, tgt_key)].add(source)
    return arrows


def test_every_package_has_a_layer() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert on_disk <= PACKAGES, f"packages without a layer: {sorted(on_disk - PACKAGES)}"


def test_no_arrow_from_a_lower_layer_to_a_higher_one() -> None:
    upward = []
    for (src, tgt), modules in sorted(graph().items()):
        if LAYERS[src] < LAYERS[tgt] or (src.split(".")[0], tgt.split(".")[0]) in FORBIDDEN:
            upward.append(f"{src} ({NAMES[LAYERS[src]]}) -> {tgt} ({NAMES[LAYERS[tgt]]}): "
                          f"{sorted(modules)}")
    assert not upward, "arrows pointing up:\n" + "\n".join(upward)


def test_the_graph_sees_lazy_imports() -> None:
    # the check would be toothless if imports inside functions were missed
    arrows = graph()
    assert "trackhouse.cli" in {src for src, _ in arrows}
    assert any(src == "trackhouse.cli" and tgt == "collector" for src, tgt in arrows)


def test_the_read_side_does_not_import_streamlit() -> None:
    # the query layer, the read API and alerts run in the collector and Dagster processes
    for package in ("queries", "readapi", "alerts"):
        for path in (ROOT / package).rglob("*.py"):
            tops = {name.split(".")[0] for name in _all_imports(path)}
            assert "streamlit" not in tops, path


def _all_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names
