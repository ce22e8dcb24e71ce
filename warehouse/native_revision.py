"""Native output for a client's protocol revision.

chdb writes Native as for revision 0 (no block info, DateTime without its time zone); a
server writes it for the client_protocol_version the client sends (ADR 0009).
"""

from __future__ import annotations

from warehouse.http_protocol import ClickHouseError
from warehouse.sql_text import split_top_level

# Revisions as ClickHouse numbers them (src/Core/ProtocolDefines.h):
REVISION_WITH_BLOCK_INFO = 51903
REVISION_WITH_TIME_ZONE_PARAMETER = 54337
REVISION_WITH_CUSTOM_SERIALIZATION = 54454
# BlockInfo as a server writes it: field 1 is_overflows=false, field 2 bucket_num=-1, end.
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"

_FIXED_WIDTH = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Enum16", "Date", "BFloat16"), 2),
    **dict.fromkeys(
        ("UInt32", "Int32", "Float32", "DateTime", "Date32", "IPv4", "Decimal32", "Time"), 4
    ),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "Decimal128", "UUID", "IPv6"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
# LowCardinality index serialization (SerializationLowCardinality.cpp)
_LC_HAS_ADDITIONAL_KEYS = 1 << 9
_LC_INDEX_WIDTH = {0: 1, 1: 2, 2: 4, 3: 8}


class UnknownLayout(Exception):
    """A column type whose Native data layout this module does not know."""


def split_type(type_name: str) -> tuple[str, list[str]]:
    """``Map(String, Array(UInt8))`` -> ``("Map", ["String", "Array(UInt8)"])``."""
    type_name = type_name.strip()
    open_at = type_name.find("(")
    if open_at < 0 or not type_name.endswith(")"):
        return type_name, []
    return type_name[:open_at], split_top_level(type_name[open_at + 1 : -1])


def _tuple_element_type(element: str) -> str:
    """A Tuple element without its name: ``a UInt8`` -> ``UInt8``, ``UInt8`` -> ``UInt8``."""
    head = element.split("(", 1)[0]
    if " " in head.strip() or element.startswith("`"):
        if element.startswith("`"):
            return element[element.index("`", 1) + 1 :].strip()
        return element.split(" ", 1)[1].strip()
    return element


class NativeBlocks:
    """Walks Native data block by block, column by column (the data bytes are skipped)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self) -> bytes:
        size = self.varint()
        start = self.position
        self.position += size
        return self.data[start : self.position]

    def uint64(self) -> int:
        value = int.from_bytes(self.data[self.position : self.position + 8], "little")
        self.position += 8
        return value

    def skip(self, type_name: str, rows: int) -> None:
        """Move past ``rows`` values of ``type_name`` (default serialization)."""
        if rows == 0:
            return
        name, arguments = split_type(type_name)
        if name in _FIXED_WIDTH:
            self.position += _FIXED_WIDTH[name] * rows
        elif name == "String":
            for _ in range(rows):
                size = self.varint()  # (position += varint() would add to the old position)
                self.position += size
        elif name == "FixedString":
            self.position += int(arguments[0]) * rows
        elif name == "Decimal":
            precision = int(arguments[0])
            width = 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
            self.position += width * rows
        elif name == "Nullable":
            self.position += rows
            self.skip(arguments[0], rows)
        elif name in ("Array", "Map"):
            self.position += 8 * rows
            nested = self.uint64_at(self.position - 8)
            elements = arguments if name == "Map" else [arguments[0]]
            for element in elements:
                self.skip(element, nested)
        elif name == "Tuple":
            for element in arguments:
                self.skip(_tuple_element_type(element), rows)
        elif name == "SimpleAggregateFunction":
            self.skip(arguments[-1], rows)
        elif name == "LowCardinality":
            self._skip_low_cardinality(arguments[0], rows)
        else:
            raise UnknownLayout(type_name)
        if self.position > len(self.data):
            raise UnknownLayout(f"{type_name}: data ends early")

    def uint64_at(self, position: int) -> int:
        return int.from_bytes(self.data[position : position + 8], "little")

    def _skip_low_cardinality(self, nested: str, rows: int) -> None:
        self.uint64()  # the keys' serialization version
        dictionary_type = nested
        name, arguments = split_type(nested)
        if name == "Nullable":
            dictionary_type = arguments[0]
        read = 0
        while read < rows:
            index_type = self.uint64()
            if index_type & _LC_HAS_ADDITIONAL_KEYS:
                self.skip(dictionary_type, self.uint64())
            count = self.uint64()
            self.position += _LC_INDEX_WIDTH[index_type & 0xFF] * count
            read += count


def write_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(value: bytes) -> bytes:
    return write_varint(len(value)) + value


class NativeRevision:
    """Rewrites chdb's Native output the way a server writes it for ``revision``.

    * From REVISION_WITH_BLOCK_INFO each block starts with its BlockInfo.
    * From REVISION_WITH_TIME_ZONE_PARAMETER a ``DateTime`` column keeps its time zone
      (``real_types``: the result's column types as the engine knows them).
    * From REVISION_WITH_CUSTOM_SERIALIZATION each column header ends with a flag byte
      (0: default serialization, which is what chdb writes for revision 0).

    LowCardinality columns need nothing: chdb keeps them at revision 0, as a server does.
    A block is rewritten up to its last column that changes; the rest is copied as it is.
    """

    def __init__(self, revision: int, real_types: list[str] | None = None) -> None:
        self.revision = revision
        self.real_types = real_types
        self.flags = revision >= REVISION_WITH_CUSTOM_SERIALIZATION

    def wants_types(self, data: bytes) -> bool:
        """Whether the real column types are needed before ``data`` (the first block) can be
        converted: only when a column may be a DateTime that lost its time zone (a column
        header ``DateTime`` is these bytes; a match in the data only costs a DESCRIBE)."""
        return (
            self.real_types is None
            and self.revision >= REVISION_WITH_TIME_ZONE_PARAMETER
            and b"\x08DateTime" in data
        )

    @staticmethod
    def requested(params: dict[str, str], output_format: str) -> int:
        """The revision a request asks Native output for (0: none, as chdb writes it)."""
        raw = params.get("client_protocol_version", "")
        if output_format.lower() != "native" or not raw.isdigit():
            return 0
        return int(raw)

    def convert(self, data: bytes, walk_all: bool = False) -> bytes:
        """One or more whole blocks of chdb's Native output, rewritten.

        ``walk_all``: ``data`` may hold several blocks (each needs its BlockInfo), so every
        column is walked; otherwise ``data`` is one block (a streamed fetch)."""
        try:
            return self._convert(data, walk_all)
        except (UnknownLayout, IndexError) as error:
            raise ClickHouseError.named(
                "NOT_IMPLEMENTED",
                f"Native output for client_protocol_version {self.revision} with a column of "
                f"type {error} is not supported by the embedded warehouse",
            ) from None

    def _convert(self, data: bytes, walk_all: bool) -> bytes:
        blocks = NativeBlocks(data)
        real_types = self.real_types or []
        out: list[bytes] = []
        while blocks.position < len(data):
            if self.revision >= REVISION_WITH_BLOCK_INFO:
                out.append(BLOCK_INFO)
            start = blocks.position
            columns, rows = blocks.varint(), blocks.varint()
            out.append(data[start : blocks.position])
            last_change = columns - 1 if (self.flags or walk_all) else self._last_change(columns)
            for index in range(columns):
                if index > last_change:
                    out.append(data[blocks.position :])
                    blocks.position = len(data)
                    break
                name, type_name = blocks.string(), blocks.string().decode()
                real = type_name
                if (
                    type_name == "DateTime"
                    and index < len(real_types)
                    and self.revision >= REVISION_WITH_TIME_ZONE_PARAMETER
                    and real_types[index].startswith("DateTime(")
                ):
                    real = real_types[index]
                out.append(_string(name) + _string(real.encode()))
                if self.flags:
                    out.append(b"\x00")
                column_start = blocks.position
                blocks.skip(type_name, rows)
                out.append(data[column_start : blocks.position])
        return b"".join(out)

    def _last_change(self, columns: int) -> int:
        if self.revision < REVISION_WITH_TIME_ZONE_PARAMETER:
            return -1
        changed = [
            i
            for i, real in enumerate((self.real_types or [])[:columns])
            if real.startswith("DateTime(")
        ]
        return changed[-1] if changed else -1
