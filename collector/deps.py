"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from clickhouse_connect.driver.client import Client as WarehouseClient
from fastapi import Depends, Request

from collector.ingest import Services
from collector.origins import KnownOrigins
from collector.ratelimit import FailedAuthLimits, RateLimits


@dataclass
class AppState:
    services: Services
    rate_limits: RateLimits
    known_origins: KnownOrigins
    warehouse: WarehouseClient | None = None
    # failed-authentication limits (None: both switched off)
    failed_auth: FailedAuthLimits | None = None
    # the read API's per-client limit (None: no limit)
    read_limits: RateLimits | None = None


async def get_state(request: Request) -> AppState:
    return request.app.state.collector


StateDep = Annotated[AppState, Depends(get_state)]
