"""How rows travel from the collector through Redis to the warehouse: one encoder, one decoder.

A request's rows reach the accept script (``collector/lua/accept.lua``) as five parts, in
message order:

- two blobs, events and profiles: the rows that need no live session (imports, profiles),
  complete JSON objects joined by newlines;
- the layout: one character per row (``LAYOUT``): which blob it is in, or that it is a live
  event row, and how it is deduplicated (by event id, or by request fingerprint);
- the tokens: every row's dedup token (its event id, or its fingerprint's key), NUL-joined;
- per live row: its fields (device id, previous-day device id or '', event time ms),
  NUL-joined, and its JSON without the closing brace (the script appends ``device_id`` and
  ``session_id`` and closes it).

JSON text never holds a raw NUL or newline (both are escaped), so NUL and newline can
separate; a device id must hold neither (``RowEncoder`` refuses one that does). Buffered rows
and batches are JSONEachRow: rows joined by newlines (``join_rows``, ``split_rows``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# layout character of a row, by (blob: 0 events, 1 profiles, None live; deduplicated by id)
LAYOUT: dict[tuple[int | None, bool], int] = {
    (0, True): ord("e"), (0, False): ord("E"), (1, True): ord("p"), (1, False): ord("P"),
    (None, True): ord("L"), (None, False): ord("R"),
}
_KINDS = {character: kind for kind, character in LAYOUT.items()}
EVENTS, PROFILES = 0, 1
ROW_SEPARATOR = b"\n"
FIELD_SEPARATOR = "\0"

# (events blob, profiles blob, layout, tokens, live rows): ``collector.buffer.AcceptRequest``'s
# row fields, in that order
EncodedRows = tuple[bytes, bytes, bytes, bytes, list[tuple[bytes, bytes]]]


class RowEncoder:
    """One request's rows, added in message order, encoded for the accept script."""

    __slots__ = ("_blobs", "_layout", "_live", "_tokens")

    def __init__(self) -> None:
        self._blobs: tuple[list[bytes], list[bytes]] = ([], [])
        self._layout = bytearray()
        self._tokens: list[str] = []
        self._live: list[tuple[bytes, bytes]] = []

    def add_complete(self, blob: int, token: str, by_id: bool, row: bytes) -> None:
        """A complete row (JSON object) of the events (``EVENTS``) or profiles blob."""
        self._tokens.append(token)
        self._layout.append(LAYOUT[blob, by_id])
        self._blobs[blob].append(row)

    def add_live(self, token: str, by_id: bool, device: str, previous_device: str,
                 event_ms: int, row_open: bytes) -> None:
        """A live event row: its JSON without the closing brace; the script picks today's or
        the previous day's device id, decides the session and appends both."""
        fields = f"{device}\0{previous_device}\0{event_ms}"
        if fields.count(FIELD_SEPARATOR) != 2 or "\n" in device or "\n" in previous_device:
            raise ValueError("a device id must not hold NUL or newline characters")
        self._tokens.append(token)
        self._layout.append(LAYOUT[None, by_id])
        self._live.append((fields.encode(), row_open))

    def encoded(self) -> EncodedRows:
        return (ROW_SEPARATOR.join(self._blobs[EVENTS]),
                ROW_SEPARATOR.join(self._blobs[PROFILES]), bytes(self._layout),
                FIELD_SEPARATOR.join(self._tokens).encode(), self._live)


@dataclass(frozen=True, slots=True)
class DecodedRow:
    """One row as the accept script reads it (``decode``)."""

    blob: int | None  # EVENTS, PROFILES, or None: a live event row
    token: str
    by_id: bool
    row: bytes  # complete, or (a live row) without its closing brace
    device: str = ""
    previous_device: str = ""
    event_ms: int = 0


def decode(rows: EncodedRows) -> list[DecodedRow]:
    """The rows of ``RowEncoder.encoded``, in message order, read as accept.lua reads them."""
    events_blob, profiles_blob, layout, tokens, live = rows
    blobs = ([*split_rows(events_blob)] if events_blob else [],
             [*split_rows(profiles_blob)] if profiles_blob else [])
    taken = [0, 0]
    token_list = tokens.decode().split(FIELD_SEPARATOR) if layout else []
    live_rows = iter(live)
    decoded = []
    for character, token in zip(layout, token_list, strict=True):
        blob, by_id = _KINDS[character]
        if blob is None:
            fields, row = next(live_rows)
            device, previous, event_ms = fields.decode().split(FIELD_SEPARATOR)
            decoded.append(DecodedRow(None, token, by_id, row, device, previous, int(event_ms)))
        else:
            decoded.append(DecodedRow(blob, token, by_id, blobs[blob][taken[blob]]))
            taken[blob] += 1
    return decoded


def join_rows(rows: Iterable[bytes]) -> bytes:
    """Rows (or chunks of rows) as one JSONEachRow body."""
    return ROW_SEPARATOR.join(rows)


def split_rows(data: bytes) -> list[bytes]:
    return data.split(ROW_SEPARATOR)


def count_rows(data: bytes) -> int:
    """The rows of a non-empty JSONEachRow body (``join_rows``)."""
    return data.count(ROW_SEPARATOR) + 1
