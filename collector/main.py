"""The collector's FastAPI application, built by ``create_app``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.routing import Route

from collector.deps import AppState
from collector.enrich.geo import GeoLocator
from collector.enrich.referrer import referrer_index
from collector.http import ApiError, error_response
from collector.ingest import Services
from collector.origins import KnownOrigins
from collector.ratelimit import RateLimits
from collector.routers import compat, health, track, tracker
from trackhouse.settings import Settings, get_settings

log = logging.getLogger(__name__)

NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                "auto_configure": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url, max_connections=256)
        referrer_index()  # load the referrer list before the first request
        services = Services(settings=settings, redis=redis,
                            geo=GeoLocator(settings.collector_geo_db_path))
        state = AppState(
            services=services,
            rate_limits=RateLimits(settings.redis_url, settings.collector_rate_limit_client,
                                   settings.collector_rate_limit_ip, redis=redis),
            known_origins=KnownOrigins(),
        )
        app.state.collector = state
        # Everything loaded so far (FastAPI, pydantic, the user-agent and referrer tables) lives
        # as long as the process: move it out of the collector's sight. The cyclic collector
        # kept rescanning it while requests allocate; measured: half of a batch's CPU time.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        try:
            yield
        finally:
            await redis.aclose()  # type: ignore[attr-defined]  # (types-redis predates it)
            if state.warehouse is not None:
                state.warehouse.close()

    app = FastAPI(
        title="Trackhouse collector",
        summary="OpenPanel-compatible ingestion API",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry: off, and never configured from the environment
        # (nothing leaves the machine; it also checks its providers on every request)
        telemetry=NO_TELEMETRY,
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        # Errors stay readable cross-origin so a browser SDK sees the 401 (and does not retry).
        origin = request.headers.get("origin")
        headers = {**error.headers}
        if origin:
            headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
        return error_response(error.status_code, error.message, headers)

    @app.exception_handler(RedisError)
    async def buffer_unavailable(request: Request, error: RedisError) -> Response:
        # the SDKs retry a 503; the answer stays JSON as they require
        log.warning("Redis unavailable: %s", error)
        return error_response(503, "the ingestion buffer is unavailable; retry later",
                              {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal error")

    app.router.routes[0:0] = [Route(path, handler, methods=["POST"])
                              for path, handler in track.FAST_ROUTES]
    app.include_router(track.router)
    app.include_router(health.router)
    app.include_router(compat.router)
    app.include_router(tracker.router)
    return app
