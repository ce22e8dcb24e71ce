"""Which requests the embedded warehouse considers at all, before reading any credential.

A web page can make the operator's browser POST to 127.0.0.1:8123: a ``text/plain`` POST needs
no CORS preflight, so the statement would run even though the page cannot read the answer. And
through DNS rebinding a page can read answers too, sending its own name as ``Host``. No
ClickHouse client sends ``Origin``, and every client names the warehouse by an address it was
configured with, so: a request carrying ``Origin`` is refused unless that origin is configured
(``TRACKHOUSE_WAREHOUSE_ALLOWED_ORIGINS``), and ``Host`` must be a loopback name, the bind
address or a configured name (``TRACKHOUSE_WAREHOUSE_ALLOWED_HOSTS``). Both answer 403 with
ClickHouse's ACCESS_DENIED (code 497) in ClickHouse's error format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from trackhouse.hosts import AllowedHosts, Scope, Send, foreign_host_message, header
from warehouse.http_protocol import ClickHouseError

ACCESS_DENIED = 497  # ClickHouse's code; HTTP 403
MAX_REMEMBERED_HOSTS = 64


def access_denied(message: str) -> ClickHouseError:
    return ClickHouseError(ACCESS_DENIED, "ACCESS_DENIED", message)


def _origin_key(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True)
class AccessPolicy:
    allowed_hosts: AllowedHosts = field(default_factory=AllowedHosts)
    allowed_origins: frozenset[str] = frozenset()
    # Every request asks about the same few Host values; parsing one (URL split, IP address)
    # was a tenth of a millisecond of the loop thread's time per query.
    _host_verdicts: dict[str | None, bool] = field(default_factory=dict, compare=False)

    @classmethod
    def configured(
        cls, hosts: Iterable[str], origins: Iterable[str], bind_host: str | None
    ) -> AccessPolicy:
        return cls(AllowedHosts(hosts, bind_host), frozenset(_origin_key(o) for o in origins))

    def refusal(self, scope: Scope) -> ClickHouseError | None:
        """Why this request is refused, or None when it may proceed to authentication."""
        host = header(scope, b"host")
        if not self._host_allowed(host):
            return access_denied(
                foreign_host_message(host, "TRACKHOUSE_WAREHOUSE_ALLOWED_HOSTS")
            )
        origin = header(scope, b"origin")
        if origin is not None and _origin_key(origin) not in self.allowed_origins:
            return access_denied(
                f"requests from web pages are refused (Origin {origin!r}); add the origin to "
                "TRACKHOUSE_WAREHOUSE_ALLOWED_ORIGINS to allow it",
            )
        return None

    def _host_allowed(self, host: str | None) -> bool:
        allowed = self._host_verdicts.get(host)
        if allowed is None:
            allowed = self.allowed_hosts.allows(host)
            if len(self._host_verdicts) < MAX_REMEMBERED_HOSTS:  # Host is the client's choice
                self._host_verdicts[host] = allowed
        return allowed


async def refuse(send: Send, error: ClickHouseError) -> None:
    """Answer as ClickHouse answers an error that happens before any query."""
    body = error.body()
    await send({
        "type": "http.response.start",
        "status": error.http_status,
        "headers": [
            (b"content-type", b"text/plain; charset=UTF-8"),
            (b"content-length", str(len(body)).encode()),
            (b"x-clickhouse-exception-code", str(error.code).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body, "more_body": False})
