"""OpenPanel's ``POST /track`` and Trackhouse's ``POST /track/batch``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accounts.auth import AuthenticatedClient, AuthError, authenticate_client_async, origin_allowed
from collector.deps import AppState, StateDep
from collector.http import (
    ALLOWED_HEADERS,
    JSON,
    ApiError,
    client_ip,
    cors_headers,
    decode_json,
    decode_ndjson,
    read_body,
)
from collector.ingest import BacklogFull, IngestContext, ingest_messages
from collector.schemas import message_json_schema

router = APIRouter(tags=["ingestion"])

_MESSAGE_SCHEMA = message_json_schema()
_TRACK_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _MESSAGE_SCHEMA}}}}
_BATCH_BODY = {"parameters": [{
    "name": "import", "in": "query", "required": False, "schema": {"type": "boolean"},
    "description": "Historical import (needs the client's secret): timestamps kept as sent, "
                   "imported_at set. Same as the header x-trackhouse-import: true."}],
    "requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "items": _MESSAGE_SCHEMA}},
    "application/x-ndjson": {"schema": {"type": "string",
                                        "description": "one message per line"}}}}}


def _headers(request: Request) -> dict[str, str]:
    """The request headers as a plain dict (one pass; Starlette's Headers scans per lookup)."""
    return dict(request.headers.items())


async def _authenticate(headers: dict[str, str], body_client_id: Any, body_secret: Any
                        ) -> AuthenticatedClient:
    client_id = headers.get("openpanel-client-id") or (
        body_client_id if isinstance(body_client_id, str) else None)
    secret = headers.get("openpanel-client-secret") or (
        body_secret if isinstance(body_secret, str) else None)
    try:
        return await authenticate_client_async(client_id, secret, headers.get("origin"))
    except AuthError as error:
        raise ApiError(error.status_code, error.message) from None


def _context(request: Request, headers: dict[str, str], state: AppState,
             client: AuthenticatedClient, *, importing: bool) -> IngestContext:
    settings = state.services.settings
    ip = client_ip(request, settings.collector_trusted_proxies, secret_client=client.has_secret,
                   headers=headers)
    return IngestContext(
        services=state.services, client=client, ip=ip,
        user_agent=headers.get("user-agent", "")[:1000],
        sdk_name=headers.get("openpanel-sdk-name", ""),
        sdk_version=headers.get("openpanel-sdk-version", ""),
        importing=importing,
        rate_limits=state.rate_limits,  # counted in the accept script's round trip
    )


IMPORT_HEADERS = ("x-trackhouse-import", "openpanel-import")
_YES = frozenset({"1", "true", "yes"})


def _wants_import(request: Request, headers: dict[str, str]) -> bool:
    """A batch is a historical import only when it says so: ``?import=true`` or an
    ``x-trackhouse-import: true`` (or ``openpanel-import: true``) header."""
    flags = [request.query_params.get("import"), *(headers.get(h) for h in IMPORT_HEADERS)]
    return any(flag is not None and flag.strip().lower() in _YES for flag in flags)


def _readable_by(headers: dict[str, str], client: AuthenticatedClient) -> dict[str, str]:
    origin = headers.get("origin")
    return cors_headers(origin, origin_allowed(origin, client.allowed_origins))


def _backlog_full() -> ApiError:
    return ApiError(503, "the ingestion buffer is full; retry later", {"Retry-After": "5"})


@router.post("/track", openapi_extra=_TRACK_BODY, summary="Ingest one OpenPanel message")
async def track(request: Request) -> Response:
    """One message (``track``, ``identify``, ``increment``, ``decrement``, ``group``,
    ``assign_group``); answers ``{"deviceId", "sessionId"}``."""
    # the hot path: no dependency injection, one pass over the headers
    state: AppState = request.app.state.collector
    headers = _headers(request)
    limit = state.services.settings.collector_max_body_bytes
    message = decode_json(await read_body(request, limit))
    if not isinstance(message, dict):
        raise ApiError(400, "the body must be a JSON object with 'type' and 'payload'")
    client = await _authenticate(headers, message.get("clientId"), message.get("clientSecret"))
    context = _context(request, headers, state, client, importing=False)
    try:
        (result,) = await ingest_messages([message], context)
    except BacklogFull:
        raise _backlog_full() from None
    if result.status == "error":
        raise ApiError(400, result.error)
    return JSON({"deviceId": result.device_id, "sessionId": result.session_id},
                headers=_readable_by(headers, client))


@router.post("/track/batch", openapi_extra=_BATCH_BODY,
             summary="Ingest many messages (JSON array or NDJSON)")
async def track_batch(request: Request) -> Response:
    """Messages as a JSON array or NDJSON; answers one result per message.

    Live by default (server-side SDKs): live sessions, timestamps clamped like ``/track``.
    With ``?import=true`` (or the header ``x-trackhouse-import: true``) a client that sends
    its secret imports history: timestamps are kept as sent and ``imported_at`` is set."""
    state: AppState = request.app.state.collector
    settings = state.services.settings
    body = await read_body(request, settings.collector_max_body_bytes * 16)
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        messages = decode_json(body)
    else:
        messages = decode_ndjson(body)
    if not messages:
        raise ApiError(400, "no messages: send a JSON array or NDJSON lines")
    if len(messages) > settings.collector_max_batch_items:
        raise ApiError(413, f"at most {settings.collector_max_batch_items} messages per batch")
    first = messages[0] if isinstance(messages[0], dict) else {}
    headers = _headers(request)
    client = await _authenticate(headers, first.get("clientId"), first.get("clientSecret"))
    importing = _wants_import(request, headers)
    if importing and not client.has_secret:
        raise ApiError(403, "importing history needs the client's secret "
                       "(openpanel-client-secret)")
    context = _context(request, headers, state, client, importing=importing)
    try:
        results = await ingest_messages(messages, context)
    except BacklogFull:
        raise _backlog_full() from None
    counts = {"accepted": 0, "duplicate": 0, "error": 0}
    for result in results:
        counts[result.status] += 1
    return JSON(
        {"accepted": counts["accepted"], "duplicates": counts["duplicate"],
         "errors": counts["error"], "results": [r.as_json() for r in results]},
        headers=_readable_by(headers, client))


# FastAPI resolves parameters and walks its routers on every request (~40 us of the ~245 us
# CPU a /track request costs, measured in-process); ``collector.main`` mounts these two
# handlers as plain Starlette routes ahead of that. The routes above stay for the OpenAPI docs.
FAST_ROUTES = (("/track", track), ("/track/batch", track_batch))


@router.options("/track", include_in_schema=False)
@router.options("/track/batch", include_in_schema=False)
async def preflight(request: Request, state: StateDep) -> Response:
    origin = request.headers.get("origin")
    if not await state.known_origins.allowed(origin):
        return Response(status_code=204, headers={"Vary": "Origin"})
    return Response(status_code=204, headers={
        **cors_headers(origin, True),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": "600",
    })
