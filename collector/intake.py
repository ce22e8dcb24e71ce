"""From a request to the ingestion seam, the same for every ingestion router (OpenPanel's,
Plausible's, Umami's): the request's ``IngestContext``, and a full backlog answered 503."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accounts.auth import AuthenticatedClient
from collector.deps import AppState
from collector.http import ApiError, client_ip
from collector.ingest import BacklogFull, IngestContext, ItemResult, ingest_messages


def intake_context(state: AppState, client: AuthenticatedClient, peer: str,
                   headers: Mapping[str, str], *, importing: bool = False, origin: str = "",
                   sdk_name: str = "", sdk_version: str = "") -> IngestContext:
    """The context of a request from ``peer`` with ``headers`` by an authenticated
    ``client``: the visitor's IP and user agent, rate limits counted in the accept call."""
    settings = state.services.settings
    ip = client_ip(peer, headers, settings.collector_trusted_proxies,
                   secret_client=client.has_secret)
    return IngestContext(
        services=state.services, client=client, ip=ip,
        user_agent=headers.get("user-agent", "")[:1000], origin=origin,
        sdk_name=sdk_name, sdk_version=sdk_version, importing=importing,
        rate_limits=state.rate_limits,
    )


async def ingest(messages: list[Any], context: IngestContext) -> list[ItemResult]:
    """``ingest_messages``, a full buffer answered 503 (the SDKs retry it)."""
    try:
        return await ingest_messages(messages, context)
    except BacklogFull:
        raise ApiError(503, "the ingestion buffer is full; retry later",
                       {"Retry-After": "5"}) from None
