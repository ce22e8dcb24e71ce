"""Drop-in endpoints for the Plausible (``POST /api/event``) and Umami (``POST /api/send``)
trackers: their requests become OpenPanel messages and go through ``ingest_messages``.

Neither tracker sends credentials: the Plausible domain (``d``) or the Umami website id
selects the project (``Project.plausible_domain`` / ``umami_website_id``). When the project
lists allowed origins, the request's ``Origin`` must match one of them (as for OpenPanel
browser clients); a project without any accepts any origin, as Plausible and Umami do.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from accounts import service
from accounts.auth import AuthenticatedClient, TTLCache, origin_allowed
from accounts.db import session_scope
from accounts.models import Project
from collector.deps import AppState, StateDep
from collector.http import ApiError, Incoming, cors_headers, decode_json, read_body
from collector.ingest import INT64_MAX
from collector.intake import ingest, intake_context
from collector.schemas import describe

router = APIRouter(tags=["compatibility"])

# Namespace of the ids answered to Umami (uuid5 of the device and session ids).
UMAMI_NAMESPACE = uuid.UUID("5b0c7a5e-6f4e-4d8f-9a53-2f1f4f6b7c11")
# Project lookups are cached like client records: ~one database query per project per TTL.
_projects: TTLCache[tuple[str, str], AuthenticatedClient | None] = TTLCache(10.0, 10_000)


# --------------------------------------------------------------------------------------
# projects
# --------------------------------------------------------------------------------------


def _as_client(kind: str, project: Project | None) -> AuthenticatedClient | None:
    if project is None:
        return None
    return AuthenticatedClient(
        client_id=f"{kind}:{project.id}", project_id=project.id, type="write", has_secret=False,
        allowed_origins=tuple(project.allowed_origins or ()), project_timezone=project.timezone,
    )


def _lookup(kind: str, key: str) -> AuthenticatedClient | None:
    with session_scope() as session:
        if kind == "plausible":
            return _as_client(kind, service.project_for_plausible_domain(session, key))
        return _as_client(kind, service.project_for_umami_website(session, key))


async def _project_client(request: Request, state: AppState, kind: str, key: str
                          ) -> AuthenticatedClient:
    cache_key = (kind, key)
    cached = _projects.get(cache_key)  # a client, None (no such project), or a miss marker
    # unknown domains and website ids are failed attempts, limited like unknown client ids
    # (``FailedAuthLimits``): counted before the lookup, taken back when it finds a project
    limits = state.failed_auth
    admitted = None
    if cached is None or isinstance(cached, AuthenticatedClient):
        client = cached
    else:
        if limits is not None:
            admitted = limits.guard(Incoming.from_scope(request.scope))
            await admitted.admit(None)
        client = await asyncio.to_thread(_projects.get_or_compute, cache_key,
                                         lambda: _lookup(kind, key))
    if client is None:
        if limits is not None and admitted is None:
            await limits.guard(Incoming.from_scope(request.scope)).failed(None)
        what = "domain" if kind == "plausible" else "website id"
        raise ApiError(404, f"no project has the {kind.title()} {what} {key[:100]!r}")
    if admitted is not None:
        await admitted.refund(None)
    origin = request.headers.get("origin")
    if client.allowed_origins and not origin_allowed(origin, client.allowed_origins):
        raise ApiError(403, f"origin {str(origin)[:100]!r} is not allowed for this project")
    return client


async def _ingest(request: Request, state: AppState, client: AuthenticatedClient,
                  message: dict[str, Any], sdk_name: str, sdk_version: str) -> tuple[str, str]:
    if message["type"] == "track":
        # Neither tracker ever retries a request, so each one is a new event: without an id
        # the collector would take a revisit of the same page within seconds (same body,
        # e.g. the back button) for a retry and drop it.
        message["payload"]["properties"]["__eventId"] = uuid.uuid4().hex
    context = intake_context(state, client, request.client.host if request.client else "",
                             request.headers, sdk_name=sdk_name, sdk_version=sdk_version)
    (result,) = await ingest([message], context)
    if result.status == "error":
        raise ApiError(400, result.error)
    return result.device_id, result.session_id


def _readable(request: Request) -> dict[str, str]:
    # The answer carries no data worth hiding; let the tracker read its status.
    return cors_headers(request.headers.get("origin"), True)


def _validated(model: type[BaseModel], value: Any) -> Any:
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise ApiError(400, describe(error)) from None


# --------------------------------------------------------------------------------------
# Plausible
# --------------------------------------------------------------------------------------


class PlausibleEvent(BaseModel):
    """The Plausible tracker's body (short keys; the long names are accepted too)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="n", min_length=1, max_length=200)
    url: str = Field(alias="u", min_length=1, max_length=2_000)
    domain: str = Field(alias="d", min_length=1, max_length=1_000)
    referrer: str | None = Field(default=None, alias="r", max_length=2_000)
    props: dict[str, Any] | None = Field(default=None, alias="p")
    revenue: dict[str, Any] | None = Field(default=None, alias="$")
    hash_mode: int | bool | None = Field(default=None, alias="h")
    version: int | str | None = Field(default=None, alias="v")

    @field_validator("props", mode="before")
    @classmethod
    def _props(cls, value: Any) -> Any:
        # Older trackers send props as a JSON string.
        if isinstance(value, str):
            decoded = decode_json(value.encode())
            if not isinstance(decoded, dict):
                raise ValueError("props must be an object")
            return decoded
        return value

    def domains(self) -> list[str]:
        # data-domain may list several sites ("a.com,b.com"): the event goes to the first
        # that names a project.
        return [d.strip() for d in self.domain.split(",") if d.strip()]


def plausible_message(event: PlausibleEvent) -> dict[str, Any]:
    """The OpenPanel ``track`` message for one Plausible event."""
    properties: dict[str, Any] = dict(event.props or {})
    properties["__path"] = event.url
    if event.referrer:
        properties["__referrer"] = event.referrer
    if event.revenue:
        properties["__revenue"] = plausible_cents(event.revenue.get("amount"))
        currency = event.revenue.get("currency")
        properties["currency"] = currency[:10] if isinstance(currency, str) else ""
    name = "screen_view" if event.name == "pageview" else event.name
    return {"type": "track", "payload": {"name": name, "properties": properties}}


def plausible_cents(amount: Any) -> int:
    """Plausible's revenue amount (whole currency units, a number or its text: "10.29") as
    the smallest unit OpenPanel's ``__revenue`` holds (1029), rounded to the nearest cent:
    the amount is a decimal, so only a sub-cent remainder is rounded away."""
    try:
        if type(amount) not in (int, float, str):
            raise ValueError
        cents = (Decimal(str(amount).strip()) * 100).to_integral_value(ROUND_HALF_EVEN)
        if not cents.is_finite():
            raise ValueError
    except (ValueError, ArithmeticError):  # decimal's errors are ArithmeticErrors
        raise ApiError(400, "$.amount must be a number (of whole currency units)") from None
    if not -INT64_MAX - 1 <= cents <= INT64_MAX:
        raise ApiError(400, "$.amount is out of range: in cents it must fit a signed 64-bit "
                            "integer")
    return int(cents)


@router.post("/api/event", status_code=202, summary="Plausible tracker events")
async def plausible_event(request: Request, state: StateDep) -> Response:
    """The Plausible tracker's events (sent as text/plain JSON); answers 202 ``ok``."""
    body = await read_body(request, state.services.settings.collector_max_body_bytes)
    event: PlausibleEvent = _validated(PlausibleEvent, decode_json(body))
    if event.name == "engagement":
        # Plausible's time-on-page heartbeat: not an event (it would turn every bounce
        # into a two-event session); Trackhouse derives durations from event times.
        return Response("ok", status_code=202, media_type="text/plain",
                        headers=_readable(request))
    client: AuthenticatedClient | None = None
    last_error: ApiError | None = None
    for domain in event.domains()[:10]:
        try:
            client = await _project_client(request, state, "plausible", domain)
            break
        except ApiError as error:
            last_error = error
    if client is None:
        raise last_error or ApiError(400, "d: a domain is required")
    version = str(event.version) if event.version is not None else ""
    await _ingest(request, state, client, plausible_message(event), "plausible", version)
    return Response("ok", status_code=202, media_type="text/plain", headers=_readable(request))


@router.options("/api/event", include_in_schema=False)
@router.options("/api/send", include_in_schema=False)
async def compat_preflight(request: Request) -> Response:
    # These trackers carry no credentials; the POST itself is checked against the
    # project's origins, so the preflight may allow any origin (as Plausible and Umami do).
    origin = request.headers.get("origin")
    return Response(status_code=204, headers={
        **cors_headers(origin, True),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "content-type, x-umami-cache",
        "Access-Control-Max-Age": "600",
    })


# --------------------------------------------------------------------------------------
# Umami
# --------------------------------------------------------------------------------------


class UmamiPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    website: str = Field(min_length=1, max_length=100)
    hostname: str | None = Field(default=None, max_length=500)
    language: str | None = Field(default=None, max_length=50)
    referrer: str | None = Field(default=None, max_length=2_000)
    screen: str | None = Field(default=None, max_length=50)
    title: str | None = Field(default=None, max_length=2_000)
    url: str | None = Field(default=None, max_length=2_000)
    name: str | None = Field(default=None, max_length=200)
    data: dict[str, Any] | None = None
    id: str | int | None = None  # identify: the distinct id (Umami 2.17+)


class UmamiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = "event"
    payload: UmamiPayload


def _decoded(text: str | None) -> str:
    # Umami 2.x trackers encodeURI/encodeURIComponent the url, title and referrer.
    return unquote(text) if text else ""


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None


def _page_url(payload: UmamiPayload, origin: str | None) -> str:
    url = _decoded(payload.url)
    parts = _split(url)
    if parts is None:
        raise ApiError(400, f"url is not a valid URL: {url[:100]!r}")
    if parts.scheme:
        return url
    # The tracker sends the path; the page's origin (with its port) comes with the request.
    base = f"https://{payload.hostname}" if payload.hostname else ""
    origin_parts = _split(origin) if origin else None
    if origin and payload.hostname and origin_parts and origin_parts.hostname == payload.hostname:
        base = origin.rstrip("/")
    page_url = base + (url if url.startswith("/") or not url else "/" + url)
    if _split(page_url) is None:
        raise ApiError(400, f"hostname is not a valid host name: {payload.hostname!r:.100}")
    return page_url


def umami_message(body: UmamiRequest, origin: str | None) -> dict[str, Any]:
    """The OpenPanel message for one Umami request."""
    payload = body.payload
    if body.type == "identify":
        data = dict(payload.data or {})
        profile_id = payload.id if payload.id not in (None, "") else data.pop("id", None)
        if profile_id in (None, ""):
            raise ApiError(400, "identify needs a distinct id (payload.id, or data.id)")
        return {"type": "identify", "payload": {"profileId": profile_id, "properties": data}}
    if body.type != "event":
        raise ApiError(400, f"type must be 'event' or 'identify', not {body.type[:40]!r}")
    properties: dict[str, Any] = dict(payload.data or {}) if payload.name else {}
    page_url = _page_url(payload, origin)
    referrer = _decoded(payload.referrer)
    if referrer.startswith("/") and not referrer.startswith("//"):
        # after an SPA route change the tracker sends the previous path as the referrer
        parts = urlsplit(page_url)  # valid: _page_url checked it
        referrer = f"{parts.scheme}://{parts.netloc}{referrer}" if parts.netloc else referrer
    properties.update({
        "__path": page_url,
        "__title": _decoded(payload.title),
        "__referrer": referrer,
    })
    if payload.language:
        properties["__language"] = payload.language
    if payload.screen:
        properties["__screen"] = payload.screen
    name = payload.name or "screen_view"
    return {"type": "track", "payload": {"name": name, "properties": properties}}


@router.post("/api/send", summary="Umami tracker events")
async def umami_send(request: Request, state: StateDep) -> Response:
    """The Umami tracker's page views, events and identify calls; answers
    ``{cache, sessionId, visitId}`` as Umami does."""
    body = await read_body(request, state.services.settings.collector_max_body_bytes)
    umami: UmamiRequest = _validated(UmamiRequest, decode_json(body))
    client = await _project_client(request, state, "umami", umami.payload.website.strip())
    message = umami_message(umami, request.headers.get("origin"))
    device_id, session_id = await _ingest(request, state, client, message, "umami", "")
    # Umami's ids are UUIDs; ours are derived, stable per device and session.
    session_uuid = uuid.uuid5(UMAMI_NAMESPACE, f"{client.project_id}:{device_id}")
    visit_uuid = uuid.uuid5(UMAMI_NAMESPACE, f"{client.project_id}:{session_id}")
    return ORJSONResponse(
        {"cache": "", "sessionId": str(session_uuid), "visitId": str(visit_uuid)},
        headers=_readable(request))
