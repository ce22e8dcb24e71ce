"""Erasure (GDPR art. 17) and access (art. 15) requests for one profile or one device.

``export`` returns every row stored about the subject, table by table. ``erase`` removes them
and corrects what was computed from them:

1. the devices, project days and profiles whose derived rows change are read first (a profile's
   devices, the days their sessions span, the profiles a device carried);
2. the subject's rows are deleted from every table that holds its column, raw tables first
   (``ALTER TABLE ... DELETE``, waited for: the parts are rewritten without the rows, unlike a
   lightweight delete, which only masks them until a merge);
3. the derived rows of those devices, days and profiles are deleted, and listed in the raw
   ``recompute`` table, which the incremental models read beside their watermark;
4. one incremental dbt run computes them again from what is left, so every mart equals a full
   rebuild without the erased rows; then the list is cleared;
5. the request is recorded in the metadata database's ``privacy_requests``, with a fingerprint
   of the subject instead of the id.

The id never appears in a statement ClickHouse records on disk: deletions name it through a
subquery on the in-memory ``erase_targets`` table. See docs/decisions/0010-data-lifecycle.md.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

from lifecycle.tables import Table, data_tables
from trackhouse.settings import Settings, get_settings
from warehouse.client import warehouse

log = logging.getLogger(__name__)

Kind = Literal["profile", "device"]
COLUMN: dict[str, str] = {"profile": "profile_id", "device": "device_id"}
# Deletions are mutations waited for on every replica, so the command returns when rows are gone.
MUTATION_SETTINGS = {"mutations_sync": 2}

Progress = Callable[[str], None]
DbtRun = Callable[[Sequence[str]], None]


class PrivacyError(Exception):
    """A request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Subject:
    project_id: str
    kind: Kind
    value: str

    def __post_init__(self) -> None:
        if self.kind not in COLUMN:
            raise PrivacyError(f"the subject is a profile or a device, not {self.kind!r}")
        if not self.project_id.strip():
            raise PrivacyError("a project id is required")
        if not self.value.strip():
            raise PrivacyError(f"an empty {self.kind} id names nobody")

    @property
    def column(self) -> str:
        return COLUMN[self.kind]

    @property
    def fingerprint(self) -> str:
        """What the audit keeps instead of the id: a later request for the same id matches."""
        text = "\x00".join((self.project_id, self.kind, self.value))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Erasure:
    subject: Subject
    request_id: str
    deleted: dict[str, int] = field(default_factory=dict)
    recomputed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


def _noop(_message: str) -> None:
    pass


def _subject_tables(tables: list[Table], subject: Subject) -> list[Table]:
    return [t for t in tables if t.has("project_id", subject.column)]


def _count(client: Client, sql: str, parameters: dict[str, Any]) -> int:
    return int(client.query(sql, parameters=parameters).result_rows[0][0])


def _subject_filter(subject: Subject, request_id: str, targets: str) -> tuple[str, dict[str, Any]]:
    sql = (f"project_id = {{project:String}} and `{subject.column}` in ("
           f"select value from {targets} where request_id = {{request:String}})")
    return sql, {"project": subject.project_id, "request": request_id}


# ---------------------------------------------------------------------------------------
# access
# ---------------------------------------------------------------------------------------


def export(subject: Subject, *, settings: Settings | None = None, client: Client | None = None,
           requested_by: str | None = None) -> dict[str, Any]:
    """Everything stored about the subject: ``{"tables": {"db.table": [row, ...]}}``, rows in
    ClickHouse's own JSON form (UUIDs and times as text, 64-bit integers as strings)."""
    settings = settings or get_settings()
    own = client is None
    client = client or warehouse(settings)
    try:
        found: dict[str, list[dict[str, Any]]] = {}
        for table in _subject_tables(data_tables(client, settings), subject):
            body = client.raw_query(
                f"select * from {table.ref} where project_id = {{project:String}} "
                f"and `{subject.column}` = {{value:String}} format JSONEachRow",
                parameters={"project": subject.project_id, "value": subject.value},
            )
            rows = [json.loads(line) for line in body.decode().splitlines() if line]
            if rows:
                found[f"{table.database}.{table.name}"] = rows
    finally:
        if own:
            client.close()
    result = {
        "project_id": subject.project_id, "kind": subject.kind, "id": subject.value,
        "exported_at": datetime.now(UTC).isoformat(), "tables": found,
    }
    _audit("export", subject, requested_by, sum(len(r) for r in found.values()),
           {name: len(rows) for name, rows in found.items()}, settings)
    return result


# ---------------------------------------------------------------------------------------
# erasure
# ---------------------------------------------------------------------------------------


@dataclass
class _Affected:
    devices: list[str]
    days: list[date]
    profiles: list[str]


def _affected(client: Client, settings: Settings, tables: list[Table],
              subject: Subject) -> _Affected:
    """The devices, project days and profiles whose derived rows the erasure changes."""
    params = {"project": subject.project_id, "value": subject.value}
    both = [t for t in tables if t.layer != "derived" and t.has("project_id", "device_id",
                                                                 "profile_id")]

    def distinct(column: str, where: str) -> set[str]:
        values: set[str] = set()
        for table in both:
            values |= {row[0] for row in client.query(
                f"select distinct `{column}` from {table.ref} "
                f"where project_id = {{project:String}} and {where}", parameters=params,
            ).result_rows}
        return values

    if subject.kind == "device":
        devices = {subject.value}
        profiles = distinct("profile_id", "device_id = {value:String} and profile_id != ''")
    else:
        devices = distinct("device_id", "profile_id = {value:String}")
        profiles = set()
    days: set[date] = set()
    analytics = settings.analytics_database
    existing = {(t.database, t.name) for t in tables}
    device_list = sorted(devices)
    if devices and (analytics, "sessions") in existing:
        # every day a session of these devices spans: a session counts on its start day and
        # its events on theirs (macros/affected_days.sql)
        days |= {row[0] for row in client.query(
            "select distinct "
            "arrayJoin(arrayMap(o -> day + o, range(toUInt32(end_day - day) + 1))) "
            f"from `{analytics}`.sessions "
            f"where project_id = {{project:String}} and device_id in {{devices:Array(String)}}",
            parameters={**params, "devices": device_list},
        ).result_rows}
    localized = client.query(
        "select count() from system.tables where database = {db:String} "
        "and name = 'int_events_localized'", parameters={"db": f"{analytics}_intermediate"},
    ).result_rows[0][0]
    if devices and localized:
        days |= {row[0] for row in client.query(
            f"select distinct day from `{analytics}_intermediate`.int_events_localized "
            f"where project_id = {{project:String}} and device_id in {{devices:Array(String)}}",
            parameters={**params, "devices": device_list},
        ).result_rows}
    # the erased device itself has nothing left to recompute; a profile's devices keep the
    # events that did not carry it
    devices.discard(subject.value if subject.kind == "device" else "")
    return _Affected(sorted(devices), sorted(days), sorted(profiles))


def _list_recompute(client: Client, settings: Settings, request_id: str, subject: Subject,
                    affected: _Affected) -> None:
    rows: list[list[Any]] = (
        [[request_id, subject.project_id, "device", d, date(1970, 1, 1)]
         for d in affected.devices]
        + [[request_id, subject.project_id, "profile", p, date(1970, 1, 1)]
           for p in affected.profiles]
        + [[request_id, subject.project_id, "day", "", d] for d in affected.days]
    )
    if rows:
        client.insert(f"{settings.raw_database}.recompute", rows,
                      column_names=["request_id", "project_id", "kind", "value", "day"])


def _delete(client: Client, table: Table, where: str, parameters: dict[str, Any]) -> int:
    """Delete matching rows (waited for); return how many there were."""
    count = _count(client, f"select count() from {table.ref} where {where}", parameters)
    if count:
        client.command(f"alter table {table.ref} delete where {where}", parameters=parameters,
                       settings=MUTATION_SETTINGS)
    return count


def default_dbt_run(settings: Settings) -> DbtRun:
    def run(args: Sequence[str]) -> None:
        from trackhouse.dbt import run_dbt

        result = run_dbt(list(args), settings)
        if not result.success:
            raise PrivacyError(
                "the rows are erased, but the dbt run that recomputes the marts failed; the "
                "next scheduled run (or `trackhouse refresh`) recomputes them: the list stays "
                f"in {settings.raw_database}.recompute")
    return run


def erase(subject: Subject, *, settings: Settings | None = None, client: Client | None = None,
          dbt: DbtRun | None = None, progress: Progress = _noop,
          requested_by: str | None = None) -> Erasure:
    """Remove every row of the subject and recompute the derived rows it touched."""
    settings = settings or get_settings()
    dbt = dbt or default_dbt_run(settings)
    own = client is None
    client = client or warehouse(settings)
    started = time.monotonic()
    erasure = Erasure(subject, uuid.uuid4().hex)
    raw = settings.raw_database
    try:
        tables = data_tables(client, settings)
        affected = _affected(client, settings, tables, subject)
        progress(f"{len(affected.devices)} device(s), {len(affected.days)} day(s) and "
                 f"{len(affected.profiles)} profile(s) to recompute")
        _list_recompute(client, settings, erasure.request_id, subject, affected)
        client.insert(f"{raw}.erase_targets",
                      [[erasure.request_id, subject.project_id, subject.value]],
                      column_names=["request_id", "project_id", "value"])
        try:
            where, params = _subject_filter(subject, erasure.request_id, f"{raw}.erase_targets")
            for table in _subject_tables(tables, subject):
                deleted = _delete(client, table, where, params)
                if deleted:
                    erasure.deleted[f"{table.database}.{table.name}"] = deleted
                    progress(f"deleted {deleted} row(s) from {table.database}.{table.name}")
        finally:
            client.command(f"alter table {raw}.erase_targets delete "
                           "where request_id = {request:String}",
                           parameters={"request": erasure.request_id})
        _clear_derived(client, settings, tables, subject, erasure, affected, progress)
        progress("recomputing the marts (dbt run)")
        dbt(["run"])
        client.command(f"alter table {raw}.recompute delete where request_id = {{request:String}}",
                       parameters={"request": erasure.request_id}, settings=MUTATION_SETTINGS)
        erasure.recomputed = {"devices": len(affected.devices), "days": len(affected.days),
                              "profiles": len(affected.profiles)}
    finally:
        if own:
            client.close()
    erasure.seconds = time.monotonic() - started
    _audit("erase", subject, requested_by, erasure.rows,
           {"deleted": erasure.deleted, "recomputed": erasure.recomputed,
            "seconds": round(erasure.seconds, 3)}, settings)
    return erasure


def _clear_derived(client: Client, settings: Settings, tables: list[Table], subject: Subject,
                   erasure: Erasure, affected: _Affected, progress: Progress) -> None:
    """Delete the derived rows of the affected devices, days and profiles: incremental runs
    replace the keys they compute again, so a key with nothing left must go beforehand."""
    params = {"project": subject.project_id, "request": erasure.request_id}
    for table in tables:
        if table.layer != "derived" or not table.has("project_id"):
            continue
        # A table's rows are keyed by the finest of these it has (the models' unique keys):
        # per device (sessions: all of a device's sessions are recomputed), else per profile,
        # else per project day. (column of the table, kind listed in recompute, its column)
        keys = []
        if table.has("device_id"):
            if affected.devices:
                keys.append(("device_id", "device", "value"))
        elif table.has("profile_id"):
            if affected.profiles:
                keys.append(("profile_id", "profile", "value"))
        elif table.has("day") and affected.days:
            keys.append(("day", "day", "day"))
        for column, kind, listed in keys:
            where = (f"project_id = {{project:String}} and `{column}` in ("
                     f"select `{listed}` from {settings.raw_database}.recompute "
                     f"where request_id = {{request:String}} and kind = '{kind}')")
            deleted = _delete(client, table, where, params)
            if deleted:
                progress(f"cleared {deleted} row(s) of {table.database}.{table.name} "
                         "to recompute")


def _audit(action: str, subject: Subject, requested_by: str | None, rows: int,
           detail: dict[str, Any], settings: Settings) -> None:
    from accounts.db import session_scope, upgrade
    from accounts.models import PrivacyRequest, utcnow

    upgrade(settings)
    with session_scope(settings) as session:
        session.add(PrivacyRequest(
            action=action, project_id=subject.project_id, subject_kind=subject.kind,
            subject_fingerprint=subject.fingerprint,
            requested_by=requested_by or f"cli:{getpass.getuser()}", rows=rows,
            detail=detail, finished_at=utcnow(),
        ))


def requests(settings: Settings | None = None, limit: int = 100) -> list[Any]:
    """The latest privacy requests, newest first (the Admin page's audit list)."""
    from sqlalchemy import select

    from accounts.db import session_scope, upgrade
    from accounts.models import PrivacyRequest

    upgrade(settings)
    with session_scope(settings) as session:
        return list(session.scalars(
            select(PrivacyRequest).order_by(PrivacyRequest.id.desc()).limit(limit)))
