"""Where the pipeline publishes dbt's documentation, and how readers find it.

Dagster's ``dbt_docs`` asset (orchestration/docs.py) runs ``dbt docs generate`` after the
builds and publishes the site here; the Explore page reads the published ``manifest.json``
(the models the pipeline built, with their docs) and ``trackhouse docs`` serves the folder.
One module, so the writer and both readers agree on the layout.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from trackhouse.settings import Settings, get_settings

SITE_FILES = ("index.html", "manifest.json", "catalog.json")
MANIFEST = "manifest.json"
FINGERPRINT = "fingerprint.txt"  # what the published site was generated from


def docs_dir(settings: Settings | None = None) -> Path:
    """The published site: ``<data_dir>/dbt_docs``."""
    return (settings or get_settings()).data_dir / "dbt_docs"


def docs_url(settings: Settings | None = None) -> str:
    """Where ``trackhouse docs`` serves the site (what the dashboards link to)."""
    settings = settings or get_settings()
    return settings.docs_public_url or f"http://{settings.docs_host}:{settings.docs_port}/"


def published_manifest_path(settings: Settings | None = None) -> Path:
    return docs_dir(settings) / MANIFEST


def read_published_manifest(settings: Settings | None = None) -> dict[str, Any] | None:
    """The manifest of the last published site, or None before the first one."""
    try:
        return json.loads(published_manifest_path(settings).read_text())
    except FileNotFoundError:
        return None


def published_fingerprint(settings: Settings | None = None) -> str | None:
    try:
        return (docs_dir(settings) / FINGERPRINT).read_text().strip()
    except FileNotFoundError:
        return None


def publish(generated: Path, fingerprint: str, settings: Settings | None = None) -> Path:
    """Copy the site files from dbt's target folder ``generated`` into the docs folder.

    The new site is staged beside the old one and swapped in by two renames, so a reader sees
    the old site or the new one, never a half-copied mix (manifest of one run, catalog of
    another)."""
    target = docs_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{os.getpid()}.new")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    for name in SITE_FILES:
        shutil.copy2(generated / name, staged / name)
    (staged / FINGERPRINT).write_text(fingerprint + "\n")
    retired = target.with_name(f".{target.name}.{os.getpid()}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    staged.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    return target
