"""The dbt project Dagster orchestrates: ``dbt_project/`` with its own ``profiles.yml``."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from dagster_dbt import DbtProject

from trackhouse.dbt import DBT_PROJECT_DIR
from trackhouse.settings import get_settings

DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def apply_dbt_env() -> None:
    """Point every dbt invocation of this process at the Trackhouse warehouse.

    dagster-dbt hands ``os.environ`` to the dbt subprocess (and reads the profile in-process to
    build an adapter), and the profile reads its connection from environment variables, so the
    variables derived from the settings go into this process's environment, plus dbt's
    do-not-track switch. The dbt executable of this Python environment goes first on PATH
    (dagster-dbt's manifest preparer looks ``dbt`` up there).
    """
    from trackhouse.dbt import dbt_env

    bin_dir = str(DBT_EXECUTABLE.parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])

    os.environ.update(dbt_env(get_settings()))
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    os.environ["DO_NOT_TRACK"] = "1"


def prepare_manifest() -> None:
    """Write ``dbt_project/target/manifest.json`` (``dbt deps`` if needed, then ``dbt parse``)."""
    apply_dbt_env()
    dbt_project.preparer.prepare(dbt_project)


PROJECT_INPUTS = ("dbt_project.yml", "models", "macros", "seeds", "tests")


def manifest_is_stale(project: DbtProject = dbt_project) -> bool:
    """True when a file of the project changed after its manifest was written."""
    manifest = Path(project.manifest_path)
    if not manifest.exists():
        return True
    written = manifest.stat().st_mtime
    root = Path(project.project_dir)
    inputs = (path for name in PROJECT_INPUTS
              for path in ([root / name] if (root / name).is_file() else (root / name).rglob("*")))
    return any(path.stat().st_mtime > written for path in inputs if path.is_file())


def prepare_manifest_if_stale() -> None:
    """Re-parse the project when a model, macro, seed or test changed since the last parse, so a
    reload of the code location (Dagster UI, Deployment -> Reload) takes in a new model. The
    webserver's and the daemon's code servers may load at once: a lock makes one parse."""
    lock_path = Path(dbt_project.project_dir) / "target" / ".parse.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest_is_stale():
            prepare_manifest()


# Under `dagster dev` the manifest is re-parsed on every code load so model edits show up at
# once; in production `trackhouse dagster` parses it before starting (prepare_manifest), and a
# code load re-parses it only when the project changed since.
if dbt_project.preparer.using_dagster_dev():
    apply_dbt_env()
    dbt_project.prepare_if_dev()
else:
    prepare_manifest_if_stale()


@cache
def dbt_manifest() -> dict[str, Any]:
    """The parsed ``manifest.json`` (sources, models, tests) the assets are built from."""
    return json.loads(dbt_project.manifest_path.read_text())
