"""A code-location reload re-parses the dbt project only when a file of it changed since the
manifest was written (a new model is then part of the assets)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace


def project_in(root: Path) -> SimpleNamespace:
    (root / "models" / "marts").mkdir(parents=True)
    (root / "macros").mkdir()
    (root / "dbt_project.yml").write_text("name: x\n")
    (root / "models" / "marts" / "a.sql").write_text("select 1 as a\n")
    return SimpleNamespace(project_dir=root, manifest_path=root / "target" / "manifest.json")


def touch(path: Path, at: float) -> None:
    os.utime(path, (at, at))


def test_the_manifest_is_stale_until_parsed_and_again_after_a_new_model(
    tmp_path: Path, manifest_ready: None
) -> None:
    from orchestration.project import manifest_is_stale

    project = project_in(tmp_path)
    assert manifest_is_stale(project)  # never parsed
    project.manifest_path.parent.mkdir()
    project.manifest_path.write_text("{}")
    for path in tmp_path.rglob("*"):
        touch(path, 1_000_000)
    touch(project.manifest_path, 2_000_000)
    assert not manifest_is_stale(project)
    new_yml = tmp_path / "models" / "marts" / "b.yml"
    new_yml.write_text("version: 2\n")
    touch(new_yml, 3_000_000)
    assert manifest_is_stale(project)
    touch(new_yml, 1_000_000)
    touch(tmp_path / "macros", 3_000_000)  # a folder's own time is not a file change
    assert not manifest_is_stale(project)
    touch(tmp_path / "dbt_project.yml", 3_000_000)
    assert manifest_is_stale(project)


def test_the_project_manifest_is_current_after_start_up(manifest_ready: None) -> None:
    from orchestration.project import dbt_project, manifest_is_stale

    assert not manifest_is_stale(dbt_project)
