"""ClickHouse SQL as text: the statement-level rules the endpoint and the migrations need.

Free of I/O and of the engine (the CLI's cluster commands import it without chdb): quoting,
bytes that are not UTF-8 kept as the client sent them, splitting at top-level commas, and
finding where an ``INSERT ... FORMAT x`` statement ends and its inline data begins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def engine_text(text: str | bytes) -> bytes:
    """SQL for chdb, byte for byte as the client sent it.

    Request text is decoded with ``surrogateescape`` so that bytes which are not UTF-8
    survive; encoding it back the same way restores them (chdb takes bytes as they are).
    """
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8", "surrogateescape")


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def split_top_level(text: str) -> list[str]:
    """The comma-separated parts of ``text`` outside parentheses and quotes, stripped, empty
    ones dropped (``Tuple(a, b), String`` is two types; so is ``Enum8('a,b' = 1), String``)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote and (len(current) < 2 or current[-2] != "\\"):
                quote = ""
            continue
        if char in "'`\"":
            quote = char
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]


# --- splitting a request into statement and inline data --------------------------------

# Tokens of ClickHouse SQL that matter for finding the top-level FORMAT clause: comments,
# quoted strings and identifiers are skipped whole so that a "FORMAT" inside them is ignored.
_TOKEN = re.compile(
    rb"""
      (?P<space>\s+)
    | (?P<comment>--[^\n]*(?:\n|$)|\#[^\n]*(?:\n|$)|/\*.*?\*/)
    | (?P<quoted>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<other>.)
    """,
    re.S | re.X,
)


@dataclass(frozen=True)
class InsertHead:
    """``INSERT ... FORMAT name`` followed by inline data starting at ``data_offset``."""

    statement: str  # the INSERT without its FORMAT clause (what insert_from_file takes)
    format: str
    data_offset: int


class NeedMoreData(Exception):
    """The head of the body ends before the statement does."""


def parse_insert_head(head: bytes, complete: bool) -> InsertHead | None:
    """Find where an ``INSERT ... FORMAT x`` statement ends and its data begins.

    Returns None when ``head`` is not such an INSERT (a SELECT, an INSERT ... SELECT or
    ... VALUES, DDL), so the whole body is SQL. Raises NeedMoreData when ``head`` stops inside
    the statement and more of the body is coming (``complete`` False). Data starts after the
    format name, skipping spaces and tabs and then at most one line break, the rule of
    ClickHouse's own INSERT parser, so binary formats keep every byte.
    """
    position, depth, first_word, expect_format_name = 0, 0, True, False
    format_start = -1
    while position < len(head):
        match = _TOKEN.match(head, position)
        if match is None:  # an unterminated quote or comment
            if complete:
                return None
            raise NeedMoreData
        kind, token = match.lastgroup, match.group()
        end = match.end()
        if kind == "word":
            if end == len(head) and not complete:
                raise NeedMoreData  # the word may continue in the next chunk
            upper = token.upper()
            if first_word:
                if upper != b"INSERT":
                    return None
                first_word = False
            elif expect_format_name:
                data = end
                while data < len(head) and head[data] in b" \t\f":
                    data += 1
                if data == len(head) and not complete:
                    raise NeedMoreData
                if head[data : data + 1] == b"\r":
                    data += 1
                if head[data : data + 1] == b"\n":
                    data += 1
                statement = head[:format_start].decode("utf-8", "surrogateescape").rstrip()
                return InsertHead(statement, token.decode(), data)
            elif depth == 0 and upper in (b"SELECT", b"WITH", b"VALUES"):
                return None
            elif depth == 0 and upper == b"FORMAT":
                expect_format_name, format_start = True, match.start()
        elif kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif kind not in ("space", "comment") and first_word:
            return None
        position = end
    if complete:
        return None
    raise NeedMoreData


def insert_from_file(
    statement: str, path: str, data_format: str, defaults: dict[str, str] | None = None
) -> str:
    """``statement`` (an INSERT without its FORMAT clause) reading its data from ``path``.

    ``FROM INFILE`` goes where ClickHouse's grammar wants it: after the table and its column
    list, before a top-level ``SETTINGS`` clause. ``defaults`` are settings for this statement
    that its own ``SETTINGS`` clause may override.
    """
    data = statement.encode("utf-8", "surrogateescape")
    position, depth, settings_at = 0, 0, len(data)
    while position < len(data):
        match = _TOKEN.match(data, position)
        if match is None:
            break
        kind = match.lastgroup
        depth += (kind == "open") - (kind == "close")
        if kind == "word" and depth == 0 and match.group().upper() == b"SETTINGS":
            settings_at = match.start()
            break
        position = match.end()
    head = data[:settings_at].decode("utf-8", "surrogateescape").rstrip()
    own = data[settings_at:].decode("utf-8", "surrogateescape").strip()
    named = {m.group().lower() for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", own)}
    extra = ", ".join(
        f"{name} = '{value}'" for name, value in (defaults or {}).items() if name not in named
    )
    settings = (f"{own}, {extra}" if own else f"SETTINGS {extra}") if extra else own
    infile = "FROM INFILE '" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{head} {infile} COMPRESSION 'none' {settings}".rstrip() + f" FORMAT {data_format}"


_FORMAT_CLAUSE = re.compile(
    rb"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)(?:\s+SETTINGS\s+[^;()]*)?\s*;?\s*$", re.I
)


def trailing_format(sql: str) -> str | None:
    """The output format a statement names in its trailing ``FORMAT x`` clause, if any."""
    match = _FORMAT_CLAUSE.search(sql.encode("utf-8", "surrogateescape")[-200:])
    return match.group(1).decode() if match else None


def without_format(sql: str) -> str:
    """The statement without its trailing ``FORMAT x`` clause (and a final semicolon)."""
    data = sql.encode("utf-8", "surrogateescape")
    tail_at = max(0, len(data) - 200)
    match = _FORMAT_CLAUSE.search(data, tail_at)
    if match is None:
        return sql.rstrip().rstrip(";")
    settings = re.search(rb"\bSETTINGS\s+[^;()]*?(?=\s*;?\s*$)", match.group(0), re.I)
    head = data[: match.start()].rstrip() + (b" " + settings.group(0) if settings else b"")
    return head.decode("utf-8", "surrogateescape").rstrip().rstrip(";")


def set_statement_names(sql: str) -> list[str]:
    """The settings a ``SET a = 1, b = 'x'`` statement names (none if it is not one)."""
    data = sql.encode("utf-8", "surrogateescape")
    names: list[str] = []
    position, depth, seen_set, expect_name = 0, 0, False, False
    previous_word = b""
    while position < len(data):
        match = _TOKEN.match(data, position)
        if match is None:
            break
        kind, token = match.lastgroup, match.group()
        position = match.end()
        if kind in ("space", "comment"):
            continue
        if not seen_set:
            if kind != "word" or token.upper() != b"SET":
                return []
            seen_set = expect_name = True
            continue
        depth += (kind == "open") - (kind == "close")
        if depth:
            continue
        if kind == "word" and expect_name:
            previous_word, expect_name = token, False
        elif kind == "quoted" and expect_name and token[:1] == b"`":
            previous_word, expect_name = token[1:-1], False
        elif token == b"=" and previous_word:
            names.append(previous_word.decode("utf-8", "surrogateescape"))
            previous_word = b""
        elif token == b",":
            expect_name = True
    return names


def first_keyword(sql: str) -> str:
    """The first SQL keyword, upper-cased, after comments and whitespace ('' if none)."""
    position, data = 0, sql.encode("utf-8", "surrogateescape")[:4096]
    while position < len(data):
        match = _TOKEN.match(data, position)
        if match is None:
            return ""
        if match.lastgroup == "word":
            return match.group().decode().upper()
        if match.lastgroup not in ("space", "comment"):
            return ""
        position = match.end()
    return ""
