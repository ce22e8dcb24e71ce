"""The Python SDK's delivery logic against a scripted local endpoint.

Batching, retries with backoff, no retry on 401, thread safety, flush at interpreter exit,
validation. What the collector makes of the events is tested against the real collector in
test_sdk_collector.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import pytest
from clients_support import SDK_PATH, ScriptedEndpoint
from trackhouse_sdk import DeliveryError, Trackhouse


def make_client(endpoint: ScriptedEndpoint, **kwargs) -> Trackhouse:
    kwargs.setdefault("flush_at_exit", False)
    return Trackhouse("client-1", "secret-1", api_url=endpoint.url, **kwargs)


def test_batches_carry_the_wire_format_and_headers(scripted_endpoint: ScriptedEndpoint) -> None:
    client = make_client(scripted_endpoint, batch_size=4)
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    for i in range(10):
        client.track("signup", {"plan": "pro", "i": i}, profile_id="u1", timestamp=moment)
    client.identify("u1", email="ada@example.com", first_name="Ada", properties={"tier": "gold"})
    client.increment("u1", "logins", 2)
    client.decrement("u1", "credits")
    assert client.flush(10)
    client.close()

    requests = scripted_endpoint.requests
    assert {r.path for r in requests} == {"/track/batch"}
    assert [len(r.json()) for r in requests] == [4, 4, 4, 1]
    headers = requests[0].headers
    assert headers["openpanel-client-id"] == "client-1"
    assert headers["openpanel-client-secret"] == "secret-1"
    assert headers["openpanel-sdk-name"] == "python"
    assert headers["user-agent"].startswith("trackhouse-python/")

    messages = scripted_endpoint.messages()
    tracks = [m for m in messages if m["type"] == "track"]
    assert [m["payload"]["properties"]["i"] for m in tracks] == list(range(10))
    first = tracks[0]["payload"]
    assert first["name"] == "signup" and first["profileId"] == "u1"
    assert first["properties"]["__timestamp"] == "2026-01-02T03:04:05.678Z"
    assert len({m["payload"]["properties"]["__eventId"] for m in tracks}) == 10
    assert messages[-3:] == [
        {"type": "identify", "payload": {
            "profileId": "u1", "firstName": "Ada", "email": "ada@example.com",
            "properties": {"tier": "gold"},
        }},
        {"type": "increment", "payload": {"profileId": "u1", "property": "logins", "value": 2}},
        {"type": "decrement", "payload": {"profileId": "u1", "property": "credits", "value": 1}},
    ]
    assert client.stats.sent == 13 and client.stats.failed == 0


def test_server_errors_are_retried_with_backoff_and_the_same_event_ids(
    scripted_endpoint: ScriptedEndpoint,
) -> None:
    scripted_endpoint.statuses = [500, 503, 200]
    client = make_client(scripted_endpoint, backoff=0.2)
    client.track("purchase", {"amount": 3})
    started = time.monotonic()
    assert client.flush(10)
    elapsed = time.monotonic() - started
    client.close()

    bodies = [r.body for r in scripted_endpoint.requests]
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]  # same body, same __eventId: deduplicable
    assert elapsed >= 0.2 + 0.4  # backoff 0.2 s, then 0.4 s
    assert client.stats.sent == 1 and client.stats.retries == 2 and client.stats.failed == 0


def test_gives_up_after_max_retries_and_reports(scripted_endpoint: ScriptedEndpoint) -> None:
    scripted_endpoint.statuses = [502] * 10
    errors: list[tuple[Exception, int]] = []
    client = make_client(
        scripted_endpoint, backoff=0.01, max_retries=2,
        on_error=lambda error, messages: errors.append((error, len(messages))),
    )
    client.track("a")
    client.track("b")
    assert client.flush(10)
    client.close()
    assert len(scripted_endpoint.requests) == 3
    assert client.stats.failed == 2 and client.stats.sent == 0
    [(error, count)] = errors
    assert isinstance(error, DeliveryError) and error.status_code == 502 and count == 2


def test_items_the_collector_rejects_are_reported(scripted_endpoint: ScriptedEndpoint) -> None:
    # /track/batch answers one verdict per message, in order.
    scripted_endpoint.answer = lambda messages: {"results": [
        {"status": "error", "error": "name: bad"} if m["payload"]["name"] == "bad"
        else {"status": "accepted", "deviceId": "d", "sessionId": "s"}
        for m in messages
    ]}
    rejected: list[dict] = []
    client = make_client(scripted_endpoint,
                         on_error=lambda error, messages: rejected.extend(messages))
    for name in ("good", "bad", "good"):
        client.track(name)
    assert client.flush(10)
    client.close()
    assert [m["payload"]["name"] for m in rejected] == ["bad"]
    assert client.stats.sent == 2 and client.stats.failed == 1


def test_bad_credentials_are_not_retried(scripted_endpoint: ScriptedEndpoint) -> None:
    scripted_endpoint.statuses = [401]
    errors: list[Exception] = []
    client = make_client(scripted_endpoint, backoff=0.01,
                         on_error=lambda error, messages: errors.append(error))
    client.track("a")
    assert client.flush(10)
    client.close()
    assert len(scripted_endpoint.requests) == 1
    assert isinstance(errors[0], DeliveryError) and errors[0].status_code == 401


def test_network_errors_are_retried() -> None:
    # A port nobody listens on: connection refused on every attempt.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    errors: list[Exception] = []
    client = Trackhouse("c", api_url=f"http://127.0.0.1:{port}", backoff=0.01, max_retries=2,
                        flush_at_exit=False, on_error=lambda error, messages: errors.append(error))
    client.track("a")
    assert client.flush(10)
    client.close()
    assert client.stats.requests == 3 and client.stats.failed == 1 and len(errors) == 1


@pytest.mark.parametrize("senders", [1, 3])
def test_many_threads_deliver_every_event_exactly_once(
    scripted_endpoint: ScriptedEndpoint, senders: int
) -> None:
    client = make_client(scripted_endpoint, batch_size=250, senders=senders)
    threads_count, per_thread = 8, 500

    def produce(thread_no: int) -> None:
        for i in range(per_thread):
            client.track("tick", {"thread": thread_no, "i": i})

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(30)
    client.close()
    seen = [(m["payload"]["properties"]["thread"], m["payload"]["properties"]["i"])
            for m in scripted_endpoint.messages()]
    assert len(seen) == threads_count * per_thread
    assert set(seen) == {(t, i) for t in range(threads_count) for i in range(per_thread)}
    assert max(len(r.json()) for r in scripted_endpoint.requests) <= 250


def test_waits_flush_interval_for_a_partial_batch(scripted_endpoint: ScriptedEndpoint) -> None:
    client = make_client(scripted_endpoint, batch_size=100, flush_interval=0.3)
    client.track("a")
    time.sleep(0.1)
    assert scripted_endpoint.requests == []  # not yet: the batch is not full
    deadline = time.monotonic() + 5
    while not scripted_endpoint.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(scripted_endpoint.requests) == 1
    client.close()


def test_full_buffer_drops_instead_of_growing(scripted_endpoint: ScriptedEndpoint) -> None:
    client = make_client(scripted_endpoint, max_queue_size=5, flush_interval=60, batch_size=100)
    for _ in range(8):
        client.track("a")
    assert client.stats.queued == 5 and client.stats.dropped == 3
    assert client.close(10)
    assert len(scripted_endpoint.messages()) == 5


def test_invalid_calls_raise_at_the_call_site(scripted_endpoint: ScriptedEndpoint) -> None:
    client = make_client(scripted_endpoint)
    with pytest.raises(ValueError, match="non-empty"):
        client.track("  ")
    with pytest.raises(ValueError, match="reserved"):
        client.track("session_start")
    with pytest.raises(ValueError, match="profile_id"):
        client.identify("", email="a@b.c")
    with pytest.raises(ValueError, match="positive"):
        client.increment("u1", "logins", 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.track("a", timestamp=datetime(2026, 1, 1))
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.track("a")
    assert scripted_endpoint.requests == []


def test_pending_events_are_sent_when_the_interpreter_exits(
    scripted_endpoint: ScriptedEndpoint,
) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SDK_PATH)!r})
        from trackhouse_sdk import Trackhouse
        client = Trackhouse("c", "s", api_url={scripted_endpoint.url!r}, flush_interval=3600)
        for i in range(7):
            client.track("exit-test", {{"i": i}})
        # no flush, no close: atexit must deliver them
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30,
                   env={**os.environ, "PYTHONPATH": ""})
    assert sorted(m["payload"]["properties"]["i"] for m in scripted_endpoint.messages()) == list(
        range(7)
    )


def test_global_properties_revenue_and_disabled(scripted_endpoint: ScriptedEndpoint) -> None:
    client = make_client(scripted_endpoint, global_properties={"app": "shop"})
    client.set_global_properties({"region": "eu"})
    client.track("viewed", {"region": "us"})  # the event's own value wins
    client.revenue(1999, {"sku": "A1"}, profile_id="u1")
    assert client.flush(10)
    client.close()
    viewed, revenue = (m["payload"] for m in scripted_endpoint.messages())
    assert {k: viewed["properties"][k] for k in ("app", "region")} == {
        "app": "shop", "region": "us"}
    assert revenue["name"] == "revenue" and revenue["profileId"] == "u1"
    assert {k: revenue["properties"][k] for k in ("__revenue", "sku", "app")} == {
        "__revenue": 1999, "sku": "A1", "app": "shop"}

    muted = make_client(scripted_endpoint, disabled=True)
    muted.track("never")
    assert muted.flush(1) and muted.close()
    assert len(scripted_endpoint.requests) == 1
