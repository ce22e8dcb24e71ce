"""Import checkpoints in the metadata database (``accounts.models.ImportCheckpoint``)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from accounts.db import session_scope
from accounts.models import ImportCheckpoint, utcnow
from importers.engine import MAX_REASONS, OTHER_REASONS, Source, Tally


class DatabaseCheckpoints:
    """One import's row, keyed by (project, source key); each save is its own transaction."""

    def __init__(self, project_id: str, source: Source, *, restart: bool = False) -> None:
        self.project_id = project_id
        self.source = source
        self.restart = restart

    def _row(self, session) -> ImportCheckpoint:  # type: ignore[no-untyped-def]
        row = session.scalars(select(ImportCheckpoint).where(
            ImportCheckpoint.project_id == self.project_id,
            ImportCheckpoint.source_key == self.source.key)).one_or_none()
        if row is None:
            row = ImportCheckpoint(project_id=self.project_id, source=self.source.name,
                                   source_key=self.source.key, refusals={}, position=None,
                                   read=0, imported=0, duplicates=0, refused=0,
                                   description=self.source.description[:500])
            session.add(row)
        return row

    def load(self) -> tuple[str | None, Tally, bool]:
        with session_scope() as session:
            row = self._row(session)
            if self.restart:  # read again from the start; the collector skips what it has
                row.position, row.finished_at = None, None
                row.read = row.imported = row.duplicates = row.refused = 0
                row.refusals = {}
                row.started_at = utcnow()
            reasons = Counter({k: int(v["count"]) for k, v in (row.refusals or {}).items()})
            examples = {k: str(v.get("example", "")) for k, v in (row.refusals or {}).items()}
            tally = Tally(read=row.read, imported=row.imported, duplicates=row.duplicates,
                          refused=row.refused, reasons=reasons, examples=examples)
            return row.position, tally, row.finished_at is not None

    def save(self, position: str, counts: Tally) -> None:
        with session_scope() as session:
            row = self._row(session)
            row.position = position
            row.read += counts.read
            row.imported += counts.imported
            row.duplicates += counts.duplicates
            row.refused += counts.refused
            refusals = dict(row.refusals or {})
            for reason, count in counts.reasons.items():
                if reason not in refusals and len(refusals) >= MAX_REASONS:
                    reason = OTHER_REASONS
                entry = refusals.get(reason) or {"count": 0,
                                                 "example": counts.examples.get(reason, "")}
                refusals[reason] = {**entry, "count": entry["count"] + count}
            row.refusals = refusals  # a new dict: JSON columns do not track mutation
            row.updated_at = utcnow()
            row.finished_at = None

    def finish(self) -> None:
        with session_scope() as session:
            row = self._row(session)
            row.finished_at = row.updated_at = utcnow()
