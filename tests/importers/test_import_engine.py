"""The importers' pure parts: ids, positions in files, value mappings (no services)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest


def test_source_event_ids_are_uuid5_of_the_source_ids() -> None:
    from importers.engine import IMPORT_NAMESPACE, source_event_id

    for parts in (("umami", "w", "e"), ("ga4", "é", "1", ""), ("openpanel", "x" * 500)):
        expected = uuid.uuid5(IMPORT_NAMESPACE, "\x1f".join(parts))
        assert source_event_id(*parts) == str(expected)
    assert source_event_id("umami", "a", "b") != source_event_id("umami", "ab", "")
    # the per-import form hashes its prefix once: the same ids
    from importers.engine import source_event_ids

    umami_ids = source_event_ids("umami", "w")
    assert [umami_ids(e) for e in ("e", "", "é" * 40)] == [
        source_event_id("umami", "w", e) for e in ("e", "", "é" * 40)]


def test_a_file_position_resumes_after_the_last_chunk(tmp_path: Path) -> None:
    """Plain NDJSON resumes by byte offset, gzip and CSV by rows: the chunks after a saved
    position are exactly the rest, for each format."""
    import gzip

    from importers.files import FileSource

    class Names(FileSource):
        name = "test"

        def message(self, record, file_number, row_number):  # type: ignore[no-untyped-def]
            return {"n": record["n"]}, str(record["n"])

    rows = [{"n": str(n)} for n in range(23)]
    ndjson = tmp_path / "a.ndjson"
    ndjson.write_bytes(b"\n".join(orjson.dumps(r) for r in rows[:10]) + b"\n\n")
    packed = tmp_path / "b.json.gz"
    packed.write_bytes(gzip.compress(b"\n".join(orjson.dumps(r) for r in rows[10:17])))
    table = tmp_path / "c.csv"
    table.write_text("n\n" + "".join(f"{r['n']}\n" for r in rows[17:]))
    source = Names([ndjson, packed, table])
    assert source.count(None) is None  # gzip is not counted ahead
    everything = [m["n"] for c in source.chunks(None, 4) for m in c.messages]
    assert everything == [r["n"] for r in rows]
    positions = [c.position for c in source.chunks(None, 4)]
    for done, position in enumerate(positions):
        rest = [m["n"] for c in source.chunks(position, 4) for m in c.messages]
        before = [m["n"] for c in list(source.chunks(None, 4))[:done + 1] for m in c.messages]
        assert before + rest == everything, position


def test_ga4_values() -> None:
    from importers.ga4 import _cents, _param_value, _with_utm, country_code

    assert [country_code(n) for n in ("Germany", "United States", "South Korea",
                                      "(not set)", "Atlantis")] == ["DE", "US", "KR", "", ""]
    assert _param_value({"string_value": None, "int_value": "17"}) == 17
    assert _param_value({"double_value": 1.5}) == 1.5
    assert _cents(19.99) == 1999 and _cents("0.005") == 0 and _cents("nan") is None
    assert _with_utm("https://a.example/p?x=1#top", {"manual_source": "news"}) == \
        "https://a.example/p?x=1&utm_source=news#top"
    assert _with_utm("https://a.example/?utm_source=ad", {"manual_source": "news"}) == \
        "https://a.example/?utm_source=ad"


def test_openpanel_maps() -> None:
    from importers.files import Refuse
    from importers.openpanel import map_value

    assert map_value("{'a':'b','it\\'s':'x\\\\y'}") == {"a": "b", "it's": "x\\y"}
    assert map_value('{"a": "b"}') == {"a": "b"} and map_value("{}") == {}
    assert map_value({"a": "1"}) == {"a": "1"}
    with pytest.raises(Refuse):
        map_value("not a map")


def test_an_unreadable_file_stops_with_its_name(tmp_path: Path) -> None:
    from importers.engine import ImportFailed
    from importers.ga4 import Ga4Source
    from importers.openpanel import OpenPanelSource

    broken = tmp_path / "events.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ImportFailed, match="events.parquet cannot be read"):
        Ga4Source([broken]).count(None)
    latin = tmp_path / "events.csv"
    latin.write_bytes(b"id,name\n1,caf\xe9\n")
    with pytest.raises(ImportFailed, match="events.csv cannot be read"):
        list(OpenPanelSource([latin]).chunks(None, 10))
    lines = tmp_path / "events.json"
    lines.write_bytes(b'{"event_name": "x", "event_timestamp": "1"}\n[1]\n\xff\xfe\n')
    chunks = list(Ga4Source([lines]).chunks(None, 10))
    refused = [r for c in chunks for r in c.refused]
    assert sum(len(c.messages) for c in chunks) == 1
    assert [row for row, _ in refused] == ["events.json:2", "events.json:3"]
    assert refused[0][1] == "a JSON line that is not an object"
    assert refused[1][1].startswith("not a JSON line")


def test_same_named_exports_of_other_folders_are_other_imports(tmp_path: Path) -> None:
    from importers.ga4 import Ga4Source

    for day in ("a", "b"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "000000000000.json").write_text("{}\n")
    first = Ga4Source([tmp_path / "a" / "000000000000.json"])
    second = Ga4Source([tmp_path / "b" / "000000000000.json"])
    assert first.key != second.key
    assert first.key == Ga4Source([tmp_path / "a" / "000000000000.json"]).key

