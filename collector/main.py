"""The collector's FastAPI application, built by ``create_app``."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.asyncio import Redis
from redis.exceptions import RedisError

from accounts.db import upgrade as upgrade_metadata
from collector.deps import AppState
from collector.enrich.geo import GeoLocator
from collector.enrich.referrer import referrer_index
from collector.fastpath import CollectorApp
from collector.http import JSON, ApiError, error_answer
from collector.ingest import Services
from collector.origins import KnownOrigins
from collector.ratelimit import FailedAuthLimits, RateLimits
from collector.routers import compat, health, read_api, reports, track, tracker
from trackhouse.hosts import AllowedHosts, HostGuard
from trackhouse.settings import Settings, get_settings

# Routes for browsers and SDKs on any site, under whatever name the operator exposes: every Host.
# The others (API docs, /ready, unknown paths) answer only the collector's own names
# (loopback, the bind address, TRACKHOUSE_COLLECTOR_ALLOWED_HOSTS): DNS rebinding protection.
# The read API is for tools on other machines (as OpenPanel's and Plausible's are) and proves
# a client secret on every request, so it answers every Host too.
PUBLIC_PATHS = ("/track", "/track/batch", "/api/event", "/api/send", "/tracker.js", "/op1.js",
                "/health", "/export/events", "/export/charts", "/api/v2/query",
                "/reports/unsubscribe")  # report recipients reach it by the public URL

NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                "auto_configure": False}


def create_app(settings: Settings | None = None, *, fast_path: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the collector reads projects and clients: bring their tables to this code's version
        # before the first request (cheap at head; concurrent starts wait on a lock)
        upgrade_metadata(settings)
        redis = Redis.from_url(settings.redis_url, max_connections=256)
        referrer_index()  # load the referrer list before the first request
        services = Services(settings=settings, redis=redis,
                            geo=GeoLocator(settings.collector_geo_db_path))
        state = AppState(
            services=services,
            rate_limits=RateLimits(settings.redis_url, settings.collector_rate_limit_client,
                                   settings.collector_rate_limit_ip, redis=redis),
            known_origins=KnownOrigins(),
            failed_auth=FailedAuthLimits(
                redis, settings.collector_failed_auth_limit_ip,
                settings.collector_failed_auth_limit_client, settings.collector_trusted_proxies,
                settings.collector_failed_auth_delay_ms)
            if settings.collector_failed_auth_limit_ip
            or settings.collector_failed_auth_limit_client else None,
            read_limits=RateLimits(settings.redis_url, settings.read_api_rate_limit, "",
                                   redis=redis) if settings.read_api_rate_limit else None,
        )
        app.state.collector = state
        warming = asyncio.get_running_loop().run_in_executor(None, read_api.warm)
        # Everything loaded so far (FastAPI, pydantic, the user-agent and referrer tables) lives
        # as long as the process: move it out of the collector's sight, which kept rescanning
        # it while requests allocate (ADR 0022).
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        try:
            yield
        finally:
            await warming
            await services.accept.connections.close()
            await redis.aclose()  # type: ignore[attr-defined]  # (types-redis predates it)
            if state.warehouse is not None:
                state.warehouse.close()

    app = CollectorApp(
        title="Trackhouse collector",
        summary="OpenPanel-compatible ingestion API",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry: off, and never configured from the environment
        # (nothing leaves the machine; it also checks its providers on every request)
        telemetry=NO_TELEMETRY,
        fast_paths=track.HANDLERS if fast_path else None,
    )

    async def answer_error(request: Request, error: Exception) -> Response:
        status, content, headers = error_answer(error, request.headers.get("origin"),
                                                request.url.path)
        return JSON(content, status_code=status, headers=headers)

    for error_type in (ApiError, RedisError, Exception):
        app.add_exception_handler(error_type, answer_error)

    app.add_middleware(
        HostGuard, allowed=AllowedHosts(settings.collector_allowed_hosts, settings.collector_host),
        setting="TRACKHOUSE_COLLECTOR_ALLOWED_HOSTS", public_paths=PUBLIC_PATHS, json=True)
    app.include_router(track.router)
    app.include_router(health.router)
    app.include_router(compat.router)
    app.include_router(tracker.router)
    app.include_router(reports.router)
    app.include_router(read_api.router)
    return app
