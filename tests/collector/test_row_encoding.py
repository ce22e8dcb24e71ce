"""``trackhouse.row_encoding``: what the encoder writes, the decoder reads back unchanged."""

from __future__ import annotations

import orjson
import pytest

from trackhouse.row_encoding import (
    EVENTS,
    PROFILES,
    DecodedRow,
    RowEncoder,
    count_rows,
    decode,
    join_rows,
    split_rows,
)

HOSTILE_TEXT = ["", "plain", "nul\0inside", "new\nline", "quote\"back\\slash", "ünïcødé 端末",
                "\ud7ff\ue000", "x" * 1_000_000]
INVALID_UTF8 = b'{"raw":"\xff\xfe\xc3("}'  # rows are bytes: passed on as they are


def test_rows_round_trip_in_message_order() -> None:
    encoder, expected = RowEncoder(), []
    for n, text in enumerate(HOSTILE_TEXT):
        row = orjson.dumps({"n": n, "text": text})
        blob = (EVENTS, PROFILES)[n % 2]
        encoder.add_complete(blob, f"id-{n}", n % 3 != 0, row)
        expected.append(DecodedRow(blob, f"id-{n}", n % 3 != 0, row))
        device = text.replace("\0", "").replace("\n", "")[:64] or "d"
        encoder.add_live(f"live-{n}", n % 2 == 0, device, "" if n % 2 else "prev", 10**12 + n,
                         row[:-1])
        expected.append(DecodedRow(None, f"live-{n}", n % 2 == 0, row[:-1], device,
                                   "" if n % 2 else "prev", 10**12 + n))
    encoder.add_complete(EVENTS, "raw", True, INVALID_UTF8)
    expected.append(DecodedRow(EVENTS, "raw", True, INVALID_UTF8))
    encoded = encoder.encoded()
    assert decode(encoded) == expected
    assert [orjson.loads(row.row)["text"] for row in expected[:-1:2]] == HOSTILE_TEXT
    events_blob, profiles_blob, layout, _, live = encoded
    assert len(layout) == len(expected) and len(live) == len(HOSTILE_TEXT)
    assert count_rows(events_blob) + count_rows(profiles_blob) == len(HOSTILE_TEXT) + 1


def test_an_empty_request_round_trips() -> None:
    encoded = RowEncoder().encoded()
    assert decode(encoded) == []
    assert encoded == (b"", b"", b"", b"", [])


@pytest.mark.parametrize("device", ["nul\0device", "new\nline"])
def test_a_device_id_that_would_cut_its_fields_is_refused(device: str) -> None:
    with pytest.raises(ValueError, match="device id"):
        RowEncoder().add_live("t", True, device, "", 1, b'{"a":1')
    with pytest.raises(ValueError, match="device id"):
        RowEncoder().add_live("t", True, "d", device, 1, b'{"a":1')


def test_batches_join_and_split_rows() -> None:
    rows = [orjson.dumps({"text": text}) for text in HOSTILE_TEXT]
    body = join_rows([join_rows(rows[:3]), join_rows(rows[3:])])  # chunks of rows
    assert split_rows(body) == rows and count_rows(body) == len(rows)
