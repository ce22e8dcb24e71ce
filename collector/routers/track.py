"""OpenPanel's ``POST /track`` and Trackhouse's ``POST /track/batch``."""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accounts.auth import AuthenticatedClient, AuthError, authenticate_client_async, origin_allowed
from collector.deps import AppState, StateDep
from collector.http import (
    ALLOWED_HEADERS,
    JSON,
    ApiError,
    Handler,
    Incoming,
    ReadBody,
    cors_headers,
    decode_json,
    decode_ndjson,
    read_body,
)
from collector.ingest import IngestContext
from collector.intake import ingest, intake_context
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


async def _authenticate(state: AppState, incoming: Incoming, body_client_id: Any,
                        body_secret: Any) -> AuthenticatedClient:
    headers = incoming.headers
    client_id = headers.get("openpanel-client-id") or (
        body_client_id if isinstance(body_client_id, str) else None)
    secret = headers.get("openpanel-client-secret") or (
        body_secret if isinstance(body_secret, str) else None)
    # failed attempts are limited per IP and client id (used only off the cached good path)
    guard = state.failed_auth.guard(incoming) if state.failed_auth is not None else None
    try:
        return await authenticate_client_async(client_id, secret, headers.get("origin"),
                                               guard=guard)
    except AuthError as error:
        retry = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        raise ApiError(error.status_code, error.message, retry) from None


def _context(incoming: Incoming, state: AppState, client: AuthenticatedClient, *,
             importing: bool) -> IngestContext:
    headers = incoming.headers
    return intake_context(state, client, incoming.peer, headers, importing=importing,
                          origin=headers.get("origin", ""),
                          sdk_name=headers.get("openpanel-sdk-name", ""),
                          sdk_version=headers.get("openpanel-sdk-version", ""))


IMPORT_HEADERS = ("x-trackhouse-import", "openpanel-import")
_YES = frozenset({"1", "true", "yes"})


def _wants_import(incoming: Incoming) -> bool:
    """A batch is a historical import only when it says so: ``?import=true`` or an
    ``x-trackhouse-import: true`` (or ``openpanel-import: true``) header."""
    query = parse_qs(incoming.query).get("import", [])
    flags = [*query[:1], *(incoming.headers.get(h) for h in IMPORT_HEADERS)]
    return any(flag is not None and flag.strip().lower() in _YES for flag in flags)


def _readable_by(headers: dict[str, str], client: AuthenticatedClient) -> dict[str, str]:
    origin = headers.get("origin")
    # a client without its secret was let in by its origin: no need to match it again
    return cors_headers(origin, not client.has_secret or
                        origin_allowed(origin, client.allowed_origins))


async def accept_track(state: AppState, incoming: Incoming, read: ReadBody
                       ) -> tuple[dict[str, Any], dict[str, str]]:
    """One message (``track``, ``identify``, ``increment``, ``decrement``, ``group``,
    ``assign_group``); answers ``{"deviceId", "sessionId"}``, the session id left out when the
    device has no live one (a profile message opens none)."""
    headers = incoming.headers
    message = decode_json(await read(state.services.settings.collector_max_body_bytes))
    if not isinstance(message, dict):
        raise ApiError(400, "the body must be a JSON object with 'type' and 'payload'")
    client = await _authenticate(state, incoming, message.get("clientId"),
                                 message.get("clientSecret"))
    context = _context(incoming, state, client, importing=False)
    (result,) = await ingest([message], context)
    if result.status == "error":
        raise ApiError(400, result.error)
    return result.ids(), _readable_by(headers, client)


async def accept_batch(state: AppState, incoming: Incoming, read: ReadBody
                       ) -> tuple[dict[str, Any], dict[str, str]]:
    """Messages as a JSON array or NDJSON; answers one result per message.

    Live by default (server-side SDKs): live sessions, timestamps clamped like ``/track``.
    With ``?import=true`` (or the header ``x-trackhouse-import: true``) a client that sends
    its secret imports history: timestamps are kept as sent and ``imported_at`` is set."""
    settings = state.services.settings
    body = await read(settings.collector_max_body_bytes * 16)
    if body.lstrip().startswith(b"["):
        messages = decode_json(body)
    else:
        messages = decode_ndjson(body)
    if not messages:
        raise ApiError(400, "no messages: send a JSON array or NDJSON lines")
    if len(messages) > settings.collector_max_batch_items:
        raise ApiError(413, f"at most {settings.collector_max_batch_items} messages per batch")
    first = messages[0] if isinstance(messages[0], dict) else {}
    headers = incoming.headers
    client = await _authenticate(state, incoming, first.get("clientId"),
                                 first.get("clientSecret"))
    importing = _wants_import(incoming)
    if importing and not client.has_secret:
        raise ApiError(403, "importing history needs the client's secret "
                       "(openpanel-client-secret)")
    context = _context(incoming, state, client, importing=importing)
    results = await ingest(messages, context)
    counts = {"accepted": 0, "duplicate": 0, "error": 0}
    for result in results:
        counts[result.status] += 1
    return ({"accepted": counts["accepted"], "duplicates": counts["duplicate"],
             "errors": counts["error"], "results": [r.as_json() for r in results]},
            _readable_by(headers, client))


# the fast path's handlers (``collector.fastpath``), given to it by ``collector.main``
HANDLERS: dict[str, Handler] = {"/track": accept_track, "/track/batch": accept_batch}


async def _through_fastapi(request: Request, handler: Handler) -> Response:
    content, headers = await handler(request.app.state.collector,
                                     Incoming.from_scope(request.scope),
                                     lambda limit: read_body(request, limit))
    return JSON(content, headers=headers)


# the documentation's descriptions are the handlers' own docstrings
@router.post("/track", openapi_extra=_TRACK_BODY, summary="Ingest one OpenPanel message",
             description=inspect.cleandoc(accept_track.__doc__ or ""))
async def track(request: Request) -> Response:
    return await _through_fastapi(request, accept_track)


@router.post("/track/batch", openapi_extra=_BATCH_BODY,
             summary="Ingest many messages (JSON array or NDJSON)",
             description=inspect.cleandoc(accept_batch.__doc__ or ""))
async def track_batch(request: Request) -> Response:
    return await _through_fastapi(request, accept_batch)


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
