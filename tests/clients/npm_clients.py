"""The third-party clients the browser tests run, installed from the npm registry.

- ``@openpanel/web`` and ``@plausible-analytics/tracker`` are ES modules: bundled with esbuild
  into plain scripts for the test site (``js/build/``).
- ``@openpanel/sdk`` runs under node (``js/node-sdk.mjs``).
- Umami's tracker is published on npm only inside the ``umami`` app package (2.10.0 is the
  last release there), whose dependencies are a whole Next.js app; ``npm pack`` fetches just
  that tarball, its integrity is checked against the registry's, and the tracker source
  ``src/tracker/index.js`` (a dependency-free IIFE, what Umami serves as ``script.js``) is
  served unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

JS_DIR = Path(__file__).resolve().parent / "js"
BUILD_DIR = JS_DIR / "build"
VENDOR_DIR = JS_DIR / "vendor"

UMAMI_PACKAGE = "umami@2.10.0"
UMAMI_TARBALL = "umami-2.10.0.tgz"
UMAMI_INTEGRITY = (
    "sha512-+lmrnV0751R6U2rkIgVAlE1nWI7yZawlMlJDguW9tlFacCKhnGeCyc7tCMIhNNYIiGIQy4DEX5IzJhm4b3+dPA=="
)
BUNDLES = {"openpanel-web.js": "openpanel-web.entry.js", "plausible.js": "plausible.entry.js"}


@dataclass(frozen=True)
class NpmClients:
    openpanel_web: Path
    plausible: Path
    umami: Path
    node_sdk: Path


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (Debian: apt-get install -y npm)")
    subprocess.run(
        [npm, *args, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS_DIR, check=True, timeout=300,
    )


def _sri(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _umami_tracker() -> Path:
    target = VENDOR_DIR / "umami-script.js"
    if target.exists():
        return target
    VENDOR_DIR.mkdir(exist_ok=True)
    tarball = VENDOR_DIR / UMAMI_TARBALL
    if not tarball.exists():
        _npm("pack", UMAMI_PACKAGE, "--pack-destination", str(VENDOR_DIR))
    if _sri(tarball) != UMAMI_INTEGRITY:
        tarball.unlink()
        raise RuntimeError(f"{UMAMI_TARBALL} does not match the registry's integrity hash")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/src/tracker/index.js")
        assert member is not None
        target.write_bytes(member.read())
    return target


def ensure_npm_clients() -> NpmClients:
    """Install (``npm ci``) and bundle whatever is missing; quick when all is there."""
    if not (JS_DIR / "node_modules" / ".package-lock.json").exists():
        _npm("ci")
    esbuild = JS_DIR / "node_modules" / ".bin" / "esbuild"
    BUILD_DIR.mkdir(exist_ok=True)
    for output, entry in BUNDLES.items():
        out = BUILD_DIR / output
        if not out.exists() or out.stat().st_mtime < (JS_DIR / "package-lock.json").stat().st_mtime:
            subprocess.run(
                [str(esbuild), entry, "--bundle", "--format=iife", "--log-level=warning",
                 f"--outfile={out}"],
                cwd=JS_DIR, check=True, timeout=120,
            )
    return NpmClients(
        openpanel_web=BUILD_DIR / "openpanel-web.js",
        plausible=BUILD_DIR / "plausible.js",
        umami=_umami_tracker(),
        node_sdk=JS_DIR / "node-sdk.mjs",
    )
