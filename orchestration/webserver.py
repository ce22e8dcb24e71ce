"""``dagster-webserver`` with Trackhouse's guard in front (``trackhouse dagster`` runs it).

The Dagster UI has no login: whoever reaches it can launch and cancel runs. It stays on
loopback (``TRACKHOUSE_DAGSTER_HOST``), and the guard refuses what a web page could make the
operator's browser send it:

- a ``Host`` that is not a loopback name, the bind address or a configured name
  (``TRACKHOUSE_DAGSTER_ALLOWED_HOSTS``): DNS rebinding;
- a request whose ``Origin`` is another site: cross-site POSTs (Dagster runs a POST of any
  content type, taking the query from the URL) and WebSockets;
- a GraphQL mutation or subscription sent by GET (a link or an image can send a GET, with no
  ``Origin``); Dagster's own UI sends them by POST and over its WebSocket.

Everything else is dagster-webserver's own command line (same options), with the guard wrapped
around the ASGI application it builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from graphql import OperationType, parse
from graphql.error import GraphQLError

from trackhouse.hosts import AllowedHosts, HostGuard, Receive, Scope, Send, refuse
from trackhouse.settings import get_settings


def _changes_state(query: str) -> bool:
    """Whether a GraphQL document holds an operation other than a query."""
    try:
        document = parse(query)
    except GraphQLError:
        return False  # Dagster answers the syntax error; nothing runs
    return any(
        getattr(definition, "operation", OperationType.QUERY) != OperationType.QUERY
        for definition in document.definitions
    )


class GraphQLGetGuard:
    """Refuses (405) GraphQL mutations and subscriptions sent by GET."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
                and scope["path"].endswith("/graphql")):
            params = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
            if any(_changes_state(query) for query in params.get("query", [])):
                await refuse(scope, send, 405, "GraphQL mutations are accepted by POST only",
                             json=False)
                return
        await self.app(scope, receive, send)


def guarded(app: Any) -> HostGuard:
    settings = get_settings()
    return HostGuard(
        GraphQLGetGuard(app),
        allowed=AllowedHosts(settings.dagster_allowed_hosts, settings.dagster_host),
        setting="TRACKHOUSE_DAGSTER_ALLOWED_HOSTS",
        same_origin_only=True,
    )


def main() -> None:
    from dagster_webserver import cli

    # dagster-webserver builds its ASGI app with this function, then serves it with uvicorn:
    # wrapping the function puts the guard around every request it serves.
    build: Callable[..., Any] = cli.create_app_from_workspace_process_context

    def build_guarded(*args: Any, **kwargs: Any) -> HostGuard:
        return guarded(build(*args, **kwargs))

    cli.create_app_from_workspace_process_context = build_guarded  # type: ignore[assignment]
    cli.main()


if __name__ == "__main__":
    main()
