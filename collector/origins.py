"""Which browser origins any client may send from: the answer to a CORS preflight.

A preflight carries no client id (browsers send header names, not values), so it is allowed
when some client or project lists a matching origin pattern; the actual POST is then checked
against its own client's origins (``accounts.auth``) and only answered readable to those.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from accounts.auth import origin_allowed
from accounts.db import session_scope
from accounts.models import Client, Project

CACHE_TTL_S = 30.0


class KnownOrigins:
    def __init__(self) -> None:
        self._patterns: tuple[str, ...] = ()
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    @staticmethod
    def _load() -> tuple[str, ...]:
        patterns: set[str] = set()
        with session_scope() as session:
            for (origins,) in session.execute(select(Project.allowed_origins)):
                patterns.update(origins or ())
            query = select(Client.allowed_origins).where(Client.revoked_at.is_(None))
            for (origins,) in session.execute(query):
                patterns.update(origins or ())
        return tuple(sorted(patterns))

    async def allowed(self, origin: str | None) -> bool:
        if not origin:
            return False
        if time.monotonic() - self._loaded_at > CACHE_TTL_S:
            async with self._lock:
                if time.monotonic() - self._loaded_at > CACHE_TTL_S:
                    self._patterns = await asyncio.to_thread(self._load)
                    self._loaded_at = time.monotonic()
        return origin_allowed(origin, self._patterns)
