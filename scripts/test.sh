#!/usr/bin/env bash
# Run the whole test suite (sets up what is missing first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DBT_SEND_ANONYMOUS_USAGE_STATS=False DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1
exec .venv/bin/python -m pytest "$@"
