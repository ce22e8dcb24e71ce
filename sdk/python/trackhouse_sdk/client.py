"""The Trackhouse client: queue events in memory, send them in batches from a thread.

Calls like :meth:`Trackhouse.track` only validate, stamp and append to an in-memory buffer
under a lock, so they are cheap and safe from any thread. A background thread (``senders``
of them, to keep several requests in flight) sends the buffer to
``POST {api_url}/track/batch`` when it holds ``batch_size`` messages or when the oldest has
waited ``flush_interval`` seconds. Failed requests are retried with exponential backoff;
every track message carries its own ``__eventId``, so a retried batch never counts twice.
The buffer is flushed when the interpreter exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from trackhouse_sdk import __version__

try:  # orjson is optional (extra "fast"): it serialises batches several times faster.
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=str)

except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, default=str, separators=(",", ":")).encode()


logger = logging.getLogger("trackhouse_sdk")

DEFAULT_API_URL = "http://127.0.0.1:8000"
RESERVED_EVENT_NAMES = frozenset({"session_start", "session_end"})
MAX_EVENT_ID_LENGTH = 64

Message = dict[str, Any]
ErrorHandler = Callable[[Exception, list[Message]], None]


class DeliveryError(Exception):
    """The collector refused a batch (or kept failing until the retries ran out)."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"collector answered {status_code}: {body}")
        self.status_code = status_code
        self.body = body


@dataclass
class DeliveryStats:
    """Counters since the client was created (read them after :meth:`Trackhouse.flush`)."""

    queued: int = 0  # accepted into the buffer
    sent: int = 0  # acknowledged by the collector
    failed: int = 0  # given up on after retries, or refused
    dropped: int = 0  # not queued because the buffer was full
    requests: int = 0  # HTTP requests made, retries included
    retries: int = 0


def _is_retryable(status_code: int) -> bool:
    # 4xx means the request itself is wrong (401 = bad credentials): asking again won't help,
    # except for timeouts and rate limits.
    return status_code >= 500 or status_code in (408, 425, 429)


def _utc_iso(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _require_profile_id(profile_id: str | int | None) -> str | int:
    if profile_id is None or profile_id == "":
        raise ValueError("profile_id is required")
    return profile_id


class Trackhouse:
    """A thread-safe client for server-side events.

    >>> th = Trackhouse("client-id", "client-secret", api_url="https://collector.example")
    >>> th.track("signup", {"plan": "pro"}, profile_id="user-1")
    >>> th.identify("user-1", email="ada@example.com", first_name="Ada")
    >>> th.increment("user-1", "logins")
    >>> th.flush()

    ``client_secret`` is required by the collector for server-side clients (no ``Origin``).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str | None = None,
        api_url: str = DEFAULT_API_URL,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        senders: int = 1,
        max_queue_size: int = 100_000,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
        global_properties: Mapping[str, Any] | None = None,
        disabled: bool = False,
        on_error: ErrorHandler | None = None,
        flush_at_exit: bool = True,
        shutdown_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        if min(batch_size, max_queue_size, senders) < 1 or max_retries < 0 or flush_interval <= 0:
            raise ValueError("batch_size, max_queue_size, senders, flush_interval must be positive")
        self.client_id = client_id
        self.api_url = api_url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.senders = senders
        self.max_queue_size = max_queue_size
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.disabled = disabled
        self.on_error = on_error
        self.shutdown_timeout = shutdown_timeout
        self.stats = DeliveryStats()
        self._global_properties: dict[str, Any] = dict(global_properties or {})
        self._headers = {
            "content-type": "application/json",
            "openpanel-client-id": client_id,
            "openpanel-sdk-name": "python",
            "openpanel-sdk-version": __version__,
            # Not httpx's default: "python-httpx" is on the crawler lists and would be
            # flagged as a bot.
            "user-agent": f"trackhouse-python/{__version__}",
        }
        if client_secret:
            self._headers["openpanel-client-secret"] = client_secret
        self._http = httpx.Client(timeout=timeout, transport=transport)

        self._cond = threading.Condition(threading.Lock())
        self._buffer: list[Message] = []
        self._done = 0  # messages sent or given up on, for flush()
        self._flush_requested = False
        self._closed = False
        self._stopping = threading.Event()  # cuts retry sleeps short when the deadline passes
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()
        if flush_at_exit:
            atexit.register(self.close)

    # -- public API ------------------------------------------------------------------------

    def track(
        self,
        name: str,
        properties: Mapping[str, Any] | None = None,
        *,
        profile_id: str | int | None = None,
        groups: Sequence[str] | None = None,
        timestamp: datetime | None = None,
        event_id: str | None = None,
        device_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """Queue an event.

        ``ip`` and ``user_agent`` forward the visitor's (geo, browser, device and the derived
        device id; honoured for clients with a secret). ``device_id`` overrides the derived
        device id (<= 64 chars).
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("event name must be a non-empty string")
        if name in RESERVED_EVENT_NAMES:
            raise ValueError(f"{name!r} is reserved for the collector")
        event_id = event_id or uuid.uuid4().hex
        if len(event_id) > MAX_EVENT_ID_LENGTH:
            raise ValueError(f"event_id is longer than {MAX_EVENT_ID_LENGTH} characters")
        props: dict[str, Any] = {**self._global_properties, **(properties or {})}
        props["__eventId"] = event_id
        props["__timestamp"] = _utc_iso(timestamp)
        if device_id is not None:
            props["__deviceId"] = device_id
        if ip is not None:
            props["__ip"] = ip
        if user_agent is not None:
            props["__userAgent"] = user_agent
        payload: dict[str, Any] = {"name": name, "properties": props}
        if profile_id is not None:
            payload["profileId"] = profile_id
        if groups:
            payload["groups"] = list(groups)
        self._enqueue({"type": "track", "payload": payload})

    def revenue(
        self, amount: int, properties: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """Queue a ``revenue`` event; ``amount`` in the currency's smallest unit."""
        self.track("revenue", {**(properties or {}), "__revenue": int(amount)}, **kwargs)

    def identify(
        self,
        profile_id: str | int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        avatar: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Create or update a profile; fields left as ``None`` keep their stored value."""
        payload: dict[str, Any] = {"profileId": _require_profile_id(profile_id)}
        for key, value in (
            ("firstName", first_name),
            ("lastName", last_name),
            ("email", email),
            ("avatar", avatar),
        ):
            if value is not None:
                payload[key] = value
        payload["properties"] = {**self._global_properties, **(properties or {})}
        self._enqueue({"type": "identify", "payload": payload})

    def increment(self, profile_id: str | int, property: str, value: float = 1) -> None:
        """Add ``value`` (> 0) to a numeric profile property."""
        self._counter("increment", profile_id, property, value)

    def decrement(self, profile_id: str | int, property: str, value: float = 1) -> None:
        """Subtract ``value`` (> 0) from a numeric profile property."""
        self._counter("decrement", profile_id, property, value)

    def set_global_properties(self, properties: Mapping[str, Any]) -> None:
        """Properties merged into every later event (event properties win)."""
        with self._cond:
            self._global_properties = {**self._global_properties, **properties}

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; True when it was all sent or given up on in time."""
        with self._cond:
            target = self.stats.queued
            if self._done >= target:
                return True
            self._flush_requested = True
            self._ensure_thread()
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the sender thread. Runs at interpreter exit unless disabled."""
        atexit.unregister(self.close)
        if self._closed:
            return True
        timeout = self.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._stopping.set()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._http.close()
        if not flushed:
            logger.warning("trackhouse: %d messages not sent before shutdown", self.pending)
        return flushed

    @property
    def pending(self) -> int:
        """Messages queued and not yet sent or given up on."""
        with self._cond:
            return self.stats.queued - self._done

    def __enter__(self) -> Trackhouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _counter(self, kind: str, profile_id: str | int, property: str, value: float) -> None:
        if not property:
            raise ValueError("property is required")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError("value must be a positive number")
        payload = {"profileId": _require_profile_id(profile_id), "property": property}
        self._enqueue({"type": kind, "payload": {**payload, "value": value}})

    def _enqueue(self, message: Message) -> None:
        if self.disabled:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("this Trackhouse client is closed")
            if len(self._buffer) >= self.max_queue_size:
                self.stats.dropped += 1
                logger.warning("trackhouse: buffer full (%d), event dropped", self.max_queue_size)
                return
            self._buffer.append(message)
            self.stats.queued += 1
            self._ensure_thread()
            if len(self._buffer) == 1 or len(self._buffer) >= self.batch_size:
                self._cond.notify_all()

    def _ensure_thread(self) -> None:
        # Called with the lock held. A forked child inherits no threads: start its own.
        if self._threads and self._pid == os.getpid():
            return  # the senders never exit before close (_run catches everything)
        self._pid = os.getpid()
        self._threads = []
        while len(self._threads) < self.senders:
            thread = threading.Thread(target=self._run, name="trackhouse-sdk", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next_batch(self) -> list[Message] | None:
        """Wait for a full batch, a flush, or flush_interval after the first message."""
        with self._cond:
            while not self._buffer:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self.flush_interval
            while (
                len(self._buffer) < self.batch_size
                and not self._flush_requested
                and not self._closed
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._deliver(batch)
            except Exception:  # never let one bad batch kill the sender thread
                logger.exception("trackhouse: unexpected error while sending a batch")
                with self._cond:
                    self.stats.failed += len(batch)
            with self._cond:
                self._done += len(batch)
                if not self._buffer:
                    self._flush_requested = False
                self._cond.notify_all()

    def _deliver(self, batch: list[Message]) -> None:
        body = _dumps(batch)
        url = f"{self.api_url}/track/batch"
        error: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                if self._stopping.wait(delay):
                    break  # shutting down and out of time
                self.stats.retries += 1
            self.stats.requests += 1
            try:
                response = self._http.post(url, content=body, headers=self._headers)
            except httpx.HTTPError as exc:
                error = exc
                continue
            if response.is_success:
                self._record_results(batch, response)
                return
            error = DeliveryError(response.status_code, response.text[:500])
            if not _is_retryable(response.status_code):
                break
        assert error is not None
        with self._cond:
            self.stats.failed += len(batch)
        self._report(error, batch)

    def _record_results(self, batch: list[Message], response: httpx.Response) -> None:
        """Count per-message verdicts when the collector returns them."""
        rejected: list[Message] = []
        reasons: list[str] = []
        try:
            body = response.json()
        except ValueError:
            body = None
        results = body.get("results") if isinstance(body, dict) else body
        if isinstance(results, list) and len(results) == len(batch):
            # {"status": "accepted" | "duplicate"} or {"status": "error", "error": "why"}
            for message, result in zip(batch, results, strict=True):
                if isinstance(result, Mapping) and (
                    result.get("status") == "error" or result.get("error")
                ):
                    rejected.append(message)
                    reasons.append(str(result.get("error") or "rejected"))
        with self._cond:
            self.stats.sent += len(batch) - len(rejected)
            self.stats.failed += len(rejected)
        if rejected:
            self._report(DeliveryError(response.status_code, "; ".join(reasons[:5])), rejected)

    def _report(self, error: Exception, messages: list[Message]) -> None:
        if self.on_error is not None:
            try:
                self.on_error(error, messages)
            except Exception:
                logger.exception("trackhouse: on_error callback raised")
        else:
            logger.warning("trackhouse: %d messages not delivered: %s", len(messages), error)
