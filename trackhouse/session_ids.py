"""The live-session layout: what a session hash holds and how a session id is made.

Its Lua twin is ``collector/lua/sessions.lua`` (the accept script decides live sessions inside
Redis); ``tests/collector/test_lua_scripts.py`` runs both on the same inputs. The hashes
themselves are ``buffer_layout.Keys.sessions``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

# a day's session hash is read as "yesterday" the whole next day
SESSION_DAYS_TTL_S = 3 * 86_400

# the RFC 4122 variant (10xx) of a UUID's 17th hex digit, by that digit
_VARIANT = {digit: format(8 + int(digit, 16) % 4, "x") for digit in "0123456789abcdef"}


def uuid_from_sha1(digest: str) -> str:
    """A SHA-1 hex digest laid out as a UUID, version 5 and RFC 4122 variant bits set (what
    ``uuid.uuid5`` does, without its objects)."""
    return (f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{_VARIANT[digest[16]]}"
            f"{digest[17:20]}-{digest[20:32]}")


@lru_cache(maxsize=65_536)
def session_id(project_id: str, device: str, started_at_ms: int) -> str:
    """The id of the session of ``device`` that started at ``started_at_ms``: a UUID laid out
    from sha1("project:device:start ms") (``session_id`` in sessions.lua)."""
    return uuid_from_sha1(
        hashlib.sha1(f"{project_id}:{device}:{started_at_ms}".encode()).hexdigest())


def session_value(start_ms: int, last_ms: int) -> bytes:
    """A session hash's value: "start ms:last seen ms" (``session_value`` in sessions.lua)."""
    return b"%d:%d" % (start_ms, last_ms)


def live_session_start(value: bytes | None, at_ms: int, idle_ms: int) -> int | None:
    """The start (ms) of the session a session hash value holds if it is still live at
    ``at_ms`` (``session_at`` in sessions.lua); None otherwise."""
    if not value:
        return None
    start, _, seen = value.partition(b":")
    return int(start) if at_ms - int(seen) <= idle_ms else None
