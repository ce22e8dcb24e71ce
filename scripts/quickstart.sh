#!/usr/bin/env bash
# Set everything up and start the whole stack on embedded defaults, with demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DBT_SEND_ANONYMOUS_USAGE_STATS=False DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1

# Redis: use the one configured (default 127.0.0.1:6379); start a local one if none answers.
redis_url="${TRACKHOUSE_REDIS_URL:-redis://127.0.0.1:6379/0}"
if ! .venv/bin/python -c "import redis,sys; redis.Redis.from_url('$redis_url').ping()" 2>/dev/null; then
  mkdir -p .data/redis
  echo "==> starting a local Redis (append-only file in .data/redis)"
  # the buffer writes every event and drops it seconds later: the append-only file grows fast
  # while the data stays small, so rewrite it past 1 GB, not the default 64 MB (README)
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$PWD/.data/redis" \
    --appendonly yes --auto-aof-rewrite-min-size 1gb --save "" \
    --logfile "$PWD/.data/redis/redis.log"
fi

th=.venv/bin/trackhouse
$th down >/dev/null 2>&1 || true
$th up --detach                  # warehouse, collector, worker, Dagster, dashboards (honcho)
$th admin bootstrap              # the first dashboard admin; its password is printed once
echo "==> sending demo traffic through the collector"
$th demo
echo "==> building the marts (a Dagster run; the schedules keep them fresh from now on)"
$th refresh
$th status
cat <<MSG

Trackhouse is running. Dashboards: http://127.0.0.1:8501 (log in with the admin above)
Dagster: http://127.0.0.1:3000   Collector: http://127.0.0.1:8000/docs
Stop it with: .venv/bin/trackhouse down
MSG
