"""Every reader of the buffer counts rows the way the collector wrote them: the backlog that
``/ready``, the Dagster check and the worker see is the collector's own row count, through a
request's whole life (buffered, claimed into a batch, landed)."""

from __future__ import annotations

from typing import Any

import redis
from collector_support import ORIGIN, TestProject
from fastapi.testclient import TestClient
from rq import Queue

from trackhouse.buffer_layout import BufferFigures, Keys
from trackhouse.settings import get_settings

ROWS = 600  # one request: one chunk of the buffer's list, 600 rows


def _readers(api: TestClient, redis_url: str) -> dict[str, int]:
    from orchestration.checks import collector_buffer_backlog
    from orchestration.resources import RedisResource

    ready = api.get("/ready").json()
    check = collector_buffer_backlog(redis=RedisResource(url=redis_url))
    return {"ready": ready["buffered_rows"] + ready["inflight_rows"],
            "dagster": check.metadata["backlog_rows"].value,
            "contract": BufferFigures.read(redis.Redis.from_url(redis_url)).backlog_rows}


def test_every_reader_counts_the_rows_the_collector_buffered(
    make_api: Any, fresh_project: TestProject, redis_server: Any, migrated: None, ch: Any,
) -> None:
    from collector.worker import IMPORTS_QUEUE_NAME, QUEUE_NAME, Flusher, Lander

    # a database of its own on the session's Redis: no other test's rows in its counts
    redis_url = f"redis://127.0.0.1:{redis_server.port}/9"
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    settings = get_settings().model_copy(update={"redis_url": redis_url})
    api = make_api(redis_url=redis_url)
    assert _readers(api, redis_url) == {"ready": 0, "dagster": 0, "contract": 0}

    items = [{"type": "track", "payload": {"name": "imported", "properties": {
        "__eventId": f"layout-{n}", "__path": f"{ORIGIN}/p{n}",
        "__timestamp": "2026-03-01T10:00:00Z"}}} for n in range(ROWS)]
    answer = api.post("/track/batch?import=true", json=items,
                      headers=fresh_project.server_headers())
    assert answer.status_code == 200 and answer.json()["accepted"] == ROWS
    assert connection.llen(Keys.buffer("imports")) == 1  # one chunk: a list's length is not rows
    assert _readers(api, redis_url) == dict.fromkeys(("ready", "dagster", "contract"), ROWS)

    flusher = Flusher(settings, connection, Queue(QUEUE_NAME, connection=connection),
                      Queue(IMPORTS_QUEUE_NAME, connection=connection))
    assert flusher.flush("imports") == ROWS
    figures = BufferFigures.read(connection)
    assert (figures.buffered_rows, figures.inflight_rows, figures.pending_batches) == (0, ROWS, 1)
    assert _readers(api, redis_url) == dict.fromkeys(("ready", "dagster", "contract"), ROWS)

    (batch_id,) = [raw.decode() for raw in connection.zrange(Keys.pending("imports"), 0, -1)]
    assert Lander(settings, connection).land("imports", batch_id) == "landed"
    assert _readers(api, redis_url) == {"ready": 0, "dagster": 0, "contract": 0}
    landed = ch.query("select count() from trackhouse.events where project_id = {p:String}",
                      parameters={"p": fresh_project.project_id}).result_rows[0][0]
    assert landed == ROWS
    connection.flushdb()
