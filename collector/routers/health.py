"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from collector.deps import AppState, StateDep
from collector.http import JSON
from trackhouse.buffer_layout import BufferFigures
from warehouse.client import warehouse

router = APIRouter(tags=["health"])


def _ping_warehouse(state: AppState) -> bool:
    # the client connects when built, so it is built on first use (the collector must start
    # and answer while the warehouse is down) and rebuilt after a failure
    if state.warehouse is None:
        state.warehouse = warehouse(state.services.settings, connect_timeout=2,
                                    send_receive_timeout=5)
    try:
        return bool(state.warehouse.ping())
    except Exception:
        state.warehouse = None
        raise


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: Redis and ClickHouse reachable, buffer backlog")
async def ready(state: StateDep) -> JSON:
    redis = state.services.redis
    checks: dict[str, object] = {}
    try:
        await redis.ping()
        pipe = redis.pipeline(transaction=False)
        BufferFigures.queue(pipe)
        figures = BufferFigures.from_replies(await pipe.execute())
        checks["redis"] = "ok"
        checks["buffered_rows"] = figures.buffered_rows
        checks["inflight_rows"] = figures.inflight_rows
        checks["pending_batches"] = figures.pending_batches
        checks["dead_letters"] = figures.dead_letters
        checks["backlog_limit"] = state.services.settings.collector_backlog_limit
    except Exception as error:  # any failure means not ready; say which
        checks["redis"] = f"error: {error}"
    try:
        ok = await asyncio.to_thread(_ping_warehouse, state)
        checks["clickhouse"] = "ok" if ok else "error: no answer"
    except Exception as error:
        checks["clickhouse"] = f"error: {error}"
    ready_now = checks.get("redis") == "ok" and checks.get("clickhouse") == "ok"
    return JSON({"status": "ready" if ready_now else "not ready", **checks},
                          status_code=200 if ready_now else 503)
