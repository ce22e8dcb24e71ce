"""The read API (docs/read-api.md): OpenPanel's ``GET /export/events`` and
``GET /export/charts`` and Plausible's ``POST /api/v2/query``, for ``read`` and ``root``
clients. Thin: authentication, the per-client rate limit and error answers here; the
figures in ``readapi`` (dbt relations only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from accounts.auth import AuthenticatedClient, AuthError, TTLCache, authenticate_client_async
from collector.deps import AppState, StateDep
from collector.http import JSON, ApiError, Incoming, decode_json, read_body

router = APIRouter(tags=["read API"])

# A Stats API query is small; anything larger is refused before it is read.
MAX_QUERY_BYTES = 64 * 1024
AUTH_HELP = ("send the client id and secret of a read or root client: the headers "
             "openpanel-client-id and openpanel-client-secret, or Authorization: Bearer "
             "<client id>:<client secret>")
# project id -> its Plausible domain (read for site_id; an edit is seen within 10 s)
_domains: TTLCache[str, str | None] = TTLCache(10, 4_096)


def warm() -> None:
    """Import the read API's modules (the query layer, pandas with it) off the event loop at
    start, not in the first request."""
    import readapi.openpanel  # noqa: F401
    import readapi.plausible  # noqa: F401


def credentials(headers: Any) -> tuple[str | None, str | None]:
    """(client id, secret) from OpenPanel's headers or ``Authorization: Bearer <id>:<secret>``."""
    client_id = headers.get("openpanel-client-id")
    secret = headers.get("openpanel-client-secret")
    authorization = headers.get("authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if not (client_id or secret) and scheme.lower() == "bearer" and ":" in token:
        client_id, _, secret = token.strip().partition(":")
    return client_id or None, secret or None


async def authorize(state: AppState, request: Request) -> AuthenticatedClient:
    """The read or root client of the request (401 bad credentials, 403 a write client,
    429 too many failures or over the client's rate limit)."""
    client_id, secret = credentials(request.headers)
    if not client_id or not secret:
        raise ApiError(401, AUTH_HELP)
    incoming = Incoming.from_scope(request.scope)
    guard = state.failed_auth.guard(incoming) if state.failed_auth is not None else None
    try:
        client = await authenticate_client_async(client_id, secret, None, need="read",
                                                 guard=guard)
    except AuthError as error:
        retry = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        raise ApiError(error.status_code, error.message, retry) from None
    if state.read_limits is not None:
        await state.read_limits.check(client.client_id, "")
    return client


async def _answer(work: Callable[..., dict[str, Any]], *args: Any) -> JSON:
    from readapi.common import ReadApiError

    try:
        return JSON(await asyncio.to_thread(work, *args))
    except ReadApiError as error:
        raise ApiError(error.status, error.message, error.headers) from None


def _project(client: AuthenticatedClient) -> Any:
    from readapi.plausible import Project

    return Project(client.project_id, client.project_timezone)


def _plausible_domain(project_id: str) -> str | None:
    from accounts.db import session_scope
    from accounts.errors import NotFound
    from accounts.service import get_project

    def load() -> str | None:
        with session_scope() as session:
            try:
                return get_project(session, project_id).plausible_domain
            except NotFound:  # deleted since the client's record was cached: no domain
                return None

    return _domains.get_or_compute(project_id, load)


def _query_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


async def _openpanel_export(export: Callable[..., dict[str, Any]], request: Request,
                            state: AppState) -> JSON:
    """An OpenPanel export endpoint: the client's own project, the query string as lists."""
    from readapi.common import reader

    client = await authorize(state, request)
    return await _answer(export, reader(state.services.settings), _project(client),
                         _query_params(request))


def _param(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind},
            "description": description}


_EVENTS_DOC = {"parameters": [
    _param("projectId", "The client's project (also project_id); default: the client's"),
    _param("event", "Event name(s): repeated, comma-separated or a JSON array"),
    _param("profileId", "Only this profile's events"),
    _param("start", "First day (YYYY-MM-DD, project time zone)"),
    _param("end", "Last day (YYYY-MM-DD, inclusive)"),
    _param("page", "Page number, from 1", "integer"),
    _param("limit", "Events per page (default 50, at most 1000)", "integer"),
    _param("includes", "profile (each event's profile); OpenPanel's other values are accepted: "
           "every field and the properties are always sent")]}
_CHARTS_DOC = {"parameters": [
    _param("projectId", "The client's project (also project_id); default: the client's"),
    _param("series", "JSON list of {name, segment: event|user|session, filters: "
           "[{name, operator: is|isNot|contains, value: [...]}]} (also: events)"),
    _param("breakdowns", "JSON list of {name}: path, country, device, browser, os, referrer, "
           "utm_*, properties.<key> ..."),
    _param("interval", "hour, day (default), week, month"),
    _param("range", "today, yesterday, 7d (default), 30d, 6m, 12m, monthToDate, lastMonth, "
           "yearToDate, lastYear"),
    _param("startDate", "First day (YYYY-MM-DD) instead of range"),
    _param("endDate", "Last day (YYYY-MM-DD)"),
    _param("previous", "true: each point and figure also for the period before", "boolean")]}
_QUERY_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["site_id", "metrics", "date_range"],
               "properties": {
                   "site_id": {"type": "string",
                               "description": "The project's Plausible domain or its id"},
                   "metrics": {"type": "array", "items": {"type": "string", "enum": [
                       "visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
                       "visit_duration", "events"]}},
                   "date_range": {"description": "day, 7d, 30d, month, or [first, last] days",
                                  "oneOf": [{"type": "string"}, {"type": "array",
                                                                 "items": {"type": "string"}}]},
                   "dimensions": {"type": "array", "items": {"type": "string"},
                                  "description": "time:day, time:hour, event:page, "
                                  "event:name, visit:source, visit:country, visit:device, "
                                  "visit:browser, visit:os, visit:utm_source, "
                                  "visit:utm_medium, visit:utm_campaign"},
                   "filters": {"type": "array", "items": {"type": "array"},
                               "description": "[is|is_not|contains, dimension, [values]]"},
                   "order_by": {"type": "array", "items": {"type": "array"}},
                   "include": {"type": "object"},
                   "pagination": {"type": "object"}}},
    "example": {"site_id": "example.com", "metrics": ["visitors", "pageviews", "bounce_rate"],
                "date_range": "7d", "dimensions": ["visit:country"],
                "filters": [["is", "visit:device", ["desktop"]]]}}}}}


@router.get("/export/events", summary="OpenPanel export: a page of events with properties",
            openapi_extra=_EVENTS_DOC)
async def export_events(request: Request, state: StateDep) -> JSON:
    from readapi import openpanel

    return await _openpanel_export(openpanel.export_events, request, state)


@router.get("/export/charts", summary="OpenPanel export: event counts per interval",
            openapi_extra=_CHARTS_DOC)
async def export_charts(request: Request, state: StateDep) -> JSON:
    from readapi import openpanel

    return await _openpanel_export(openpanel.export_charts, request, state)


@router.post("/api/v2/query", summary="Plausible Stats API v2 (subset)",
             openapi_extra=_QUERY_DOC)
async def stats_query(request: Request, state: StateDep) -> JSON:
    from readapi import plausible
    from readapi.common import ReadApiError, reader

    client = await authorize(state, request)
    body = decode_json(await read_body(request, MAX_QUERY_BYTES))
    project = _project(client)
    site_id = body.get("site_id") if isinstance(body, dict) else None
    if isinstance(site_id, str) and site_id != project.id:
        domain = await asyncio.to_thread(_plausible_domain, project.id)
        if domain is None or site_id.strip().lower() != domain.lower():
            # one answer whether or not the site exists: nothing about other projects leaks
            raise ApiError(403, f"site_id {site_id[:100]!r} is not this client's project")
    try:
        query = plausible.parse_query(body, project)
    except ReadApiError as error:
        raise ApiError(error.status, error.message) from None
    return await _answer(plausible.run_query, reader(state.services.settings), project, query)
