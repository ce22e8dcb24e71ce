#!/usr/bin/env bash
# Run the whole test suite (sets up what is missing first). Extra arguments go to pytest.
# Two pytest-xdist workers, each taking whole test folders (tests/conftest.py schedules them) with
# a warehouse and a Redis of its own; TRACKHOUSE_TEST_WORKERS=0 runs in one process. Against a
# real ClickHouse server (TRACKHOUSE_CLICKHOUSE_URL) the workers would share its databases:
# one process there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DBT_SEND_ANONYMOUS_USAGE_STATS=False DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1
if [[ -n "${TRACKHOUSE_CLICKHOUSE_URL:-}" ]]; then default_workers=0; else default_workers=2; fi
exec .venv/bin/python -m pytest -n "${TRACKHOUSE_TEST_WORKERS:-$default_workers}" \
    --dist loadscope "$@"
