"""Sources read from files (GA4's BigQuery export, OpenPanel dumps): NDJSON (plain or
gzip), CSV with a header, Parquet. A position is (file number, rows consumed, byte offset of
the next line for plain NDJSON), so a resumed import seeks instead of re-reading."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from importers.engine import Chunk, ImportFailed, source_key

Record = dict[str, Any]


class Refuse(Exception):
    """A source row that cannot become an event; the message is the reason reported."""


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    return "ndjson"


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _ndjson(path: Path, rows_done: int, offset: int) -> Iterator[tuple[Record | Exception,
                                                                         int]]:
    """(record or its parse error, byte offset after it); plain files seek to ``offset``."""
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as stream:
            seen = 0
            for line in stream:
                if line.strip():
                    seen += 1
                    if seen > rows_done:
                        yield _parse_line(line), 0
        return
    with path.open("rb") as stream:
        stream.seek(offset)
        for line in stream:
            offset += len(line)
            if line.strip():
                yield _parse_line(line), offset


def _parse_line(line: bytes) -> Record | Exception:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return Refuse(f"not a JSON line ({error})")
    return value if isinstance(value, dict) else Refuse("a JSON line that is not an object")


def _csv(path: Path, rows_done: int) -> Iterator[tuple[Record | Exception, int]]:
    with _open_text(path) as stream:
        for number, row in enumerate(csv.DictReader(stream)):
            if number >= rows_done:
                yield row, 0


def _parquet(path: Path, rows_done: int) -> Iterator[tuple[Record | Exception, int]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ImportFailed("reading Parquet needs pyarrow") from None
    skip = rows_done
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        for row in batch.slice(skip).to_pylist():
            yield row, 0
        skip = 0


def _readable(records: Iterator[tuple[Record | Exception, int]], path: Path
              ) -> Iterator[tuple[Record | Exception, int]]:
    """The records, a file that cannot be read (not UTF-8, a NUL in a CSV, a broken Parquet
    or gzip file) stopping the import with its name: what was acknowledged stays
    checkpointed."""
    try:
        yield from records
    except Exception as error:  # noqa: BLE001 - any reader's error: the file is bad
        raise ImportFailed(f"{path.name} cannot be read: {error}") from None


def count_rows(path: Path) -> int | None:
    """Rows of a file without parsing them (None for gzip: too slow to count first)."""
    kind = _kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if path.name.lower().endswith(".gz"):
        return None
    lines = 0
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            lines += block.count(b"\n")
    return max(lines - (1 if kind == "csv" else 0), 0)


class FileSource:
    """Rows of files in order, each turned into a collector message by ``message``."""

    name = "files"

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        # where and how big each file is (hashed): same-named exports of other days differ
        parts = [f"{p.resolve()}:{p.stat().st_size}" for p in self.paths]
        self.key = source_key(self.name, *parts)
        names = ", ".join(p.name for p in self.paths[:3])
        more = f" and {len(self.paths) - 3} more" if len(self.paths) > 3 else ""
        self.description = f"{self.name} files {names}{more}"[:500]

    def message(self, record: Record, file_number: int, row_number: int
                ) -> tuple[dict[str, Any], str]:
        """(collector message, source row id) of one record; raises ``Refuse``."""
        raise NotImplementedError

    @staticmethod
    def _state(position: str | None) -> tuple[int, int, int]:
        if position is None:
            return 0, 0, 0
        state = orjson.loads(position)
        return int(state["file"]), int(state["row"]), int(state.get("offset", 0))

    def count(self, position: str | None) -> int | None:
        first, rows_done, _ = self._state(position)
        counts = []
        for path in self.paths[first:]:
            try:
                counts.append(count_rows(path))
            except Exception as error:  # noqa: BLE001 - any reader's error: the file is bad
                raise ImportFailed(f"{path.name} cannot be read: {error}") from None
        if any(c is None for c in counts):
            return None
        return max(sum(c for c in counts if c is not None) - rows_done, 0)

    def chunks(self, position: str | None, size: int) -> Iterator[Chunk]:
        first, rows_done, offset = self._state(position)
        for number in range(first, len(self.paths)):
            path = self.paths[number]
            kind = _kind(path)
            records = (_parquet(path, rows_done) if kind == "parquet" else
                       _csv(path, rows_done) if kind == "csv" else
                       _ndjson(path, rows_done, offset))
            chunk = Chunk([], [], "")
            row = rows_done
            for record, after in _readable(records, path):
                try:
                    if isinstance(record, Exception):
                        raise record
                    message, row_id = self.message(record, number, row)
                    chunk.messages.append(message)
                    chunk.row_ids.append(row_id)
                except Refuse as error:
                    chunk.refused.append((f"{path.name}:{row + 1}", str(error)))
                row += 1
                if chunk.read >= size:
                    chunk.position = orjson.dumps(
                        {"file": number, "row": row, "offset": after}).decode()
                    yield chunk
                    chunk = Chunk([], [], "")
            # the file is done: the next one starts at its beginning
            chunk.position = orjson.dumps({"file": number + 1, "row": 0}).decode()
            yield chunk
            rows_done, offset = 0, 0
