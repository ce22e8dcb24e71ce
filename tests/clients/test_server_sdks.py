"""Server-side senders against the real collector: the OpenPanel Node SDK from npm
(``@openpanel/sdk``, one request per event with a client secret) and Trackhouse's Python SDK
(batches to ``/track/batch``). Rows are checked in ClickHouse."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from typing import Any

from clients_support import Stack, make_client_project, wait_for_rows
from npm_clients import NpmClients
from test_browser_clients import EVENTS_SQL, PROFILES_SQL
from trackhouse_sdk import Trackhouse

SERVER_ORIGIN = "https://backend.example"  # server clients send no Origin; any will do
SAFARI_MAC_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)


def test_openpanel_node_sdk_sends_server_side_events(stack: Stack, npm_clients: NpmClients
                                                     ) -> None:
    project = make_client_project(SERVER_ORIGIN, "e2e-node")
    run_id = uuid.uuid4().hex[:8]
    node = shutil.which("node") or "node"
    finished = subprocess.run(
        [node, str(npm_clients.node_sdk), stack.url, project.server_client, project.secret,
         run_id],
        capture_output=True, text=True, timeout=60, check=True,
    )
    report = json.loads(finished.stdout.strip().splitlines()[-1])

    events = wait_for_rows(EVENTS_SQL, {"project": project.project_id}, 2)
    assert sorted(r["name"] for r in events) == ["order_paid", "revenue"]
    by_name = {r["name"]: r for r in events}
    order = by_name["order_paid"]
    assert order["properties"] == {"amount": "4200", "currency": "EUR", "runId": run_id}
    assert order["profile_id"] == f"node-user-{run_id}"  # identify() set the SDK's profile
    assert by_name["revenue"]["properties"]["runId"] == run_id
    # the forwarded visitor (openpanel-client-ip, user-agent), not the Node process
    assert {(r["browser"], r["os"], r["device"], r["is_bot"]) for r in events} == {
        ("Safari", "Mac OS X", "desktop", False)}
    assert {r["sdk_name"] for r in events} == {"node"}
    # the SDK kept the device id the collector answered
    assert {r["device_id"] for r in events} == {report["deviceId"]}
    assert all(answer is None or answer.get("deviceId") == report["deviceId"]
               for answer in report["answers"])

    profiles = wait_for_rows(PROFILES_SQL, {"project": project.project_id}, 3)
    kinds = sorted(p["kind"] for p in profiles)
    assert kinds == ["decrement", "identify", "increment"]
    identify = next(p for p in profiles if p["kind"] == "identify")
    assert (identify["first_name"], identify["email"]) == ("Grace", "grace@example.com")
    assert identify["properties"] == {"plan": "enterprise"}
    assert {p["profile_id"] for p in profiles} == {f"node-user-{run_id}"}


def test_python_sdk_batches_land_once(stack: Stack) -> None:
    project = make_client_project(SERVER_ORIGIN, "e2e-python")
    rejected: list[dict[str, Any]] = []
    client = Trackhouse(project.server_client, project.secret, api_url=stack.url,
                        batch_size=40, flush_at_exit=False,
                        on_error=lambda error, messages: rejected.extend(messages))
    for i in range(100):
        client.track("job_done", {"i": i, "queue": "mail"}, profile_id="svc-1",
                     ip="198.51.100.4", user_agent=SAFARI_MAC_UA)
    client.identify("svc-1", email="svc@example.com", first_name="Svc")
    client.increment("svc-1", "jobs", 100)
    # the same event sent twice (a resend after a lost answer) is stored once
    client.track("resent", event_id="resent-event-1")
    client.track("resent", event_id="resent-event-1")
    client.identify("svc-2", email="not-an-email")  # the collector rejects this one
    assert client.flush(30)
    client.close()
    assert client.stats.failed == 1 and client.stats.sent == 104
    assert [m["payload"]["profileId"] for m in rejected] == ["svc-2"]

    events = wait_for_rows(EVENTS_SQL, {"project": project.project_id}, 101)
    assert len(events) == 101
    jobs = [r for r in events if r["name"] == "job_done"]
    assert sorted(int(r["properties"]["i"]) for r in jobs) == list(range(100))
    assert {(r["profile_id"], r["browser"], r["os"], r["sdk_name"]) for r in jobs} == {
        ("svc-1", "Safari", "Mac OS X", "python")}
    assert [r["name"] for r in events].count("resent") == 1

    profiles = wait_for_rows(PROFILES_SQL, {"project": project.project_id}, 2)
    assert sorted((p["profile_id"], p["kind"]) for p in profiles) == [
        ("svc-1", "identify"), ("svc-1", "increment")]
