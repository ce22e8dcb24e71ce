"""The one filter compiler: (field, op, value) triples -> parameterised ClickHouse SQL.

Every dashboard tile goes through :func:`compile_filters`. Field names come from a whitelist
(``FIELDS``) and map to fixed column expressions; values and event-property keys never enter
the SQL text, they travel as server-side parameters (``{f0_value:String}``), so a hostile value
such as ``' OR 1=1 --`` is compared as a string and cannot change the query.

The table decider (Plausible's idea): a field is either a *session* field (the sessions mart has
it, taken from the session's first event; events_current carries the same column) or an
*event* field (path, event name, event properties), which a session only matches when one of
its events does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

PROPERTY_PREFIX = "prop:"
# The URL form of a filter is "<field>|<op>|<value>"; property keys may not contain the separator.
URL_SEPARATOR = "|"
MAX_VALUE_LENGTH = 500


class Op(StrEnum):
    IS = "is"
    IS_NOT = "is_not"
    CONTAINS = "contains"


OP_LABELS = {Op.IS: "is", Op.IS_NOT: "is not", Op.CONTAINS: "contains"}


@dataclass(frozen=True)
class FieldSpec:
    label: str
    column: str  # the column of events_current (and of the sessions mart for session fields)
    session_level: bool  # True: the sessions mart has the column; False: event-level only


FIELDS: dict[str, FieldSpec] = {
    "path": FieldSpec("Page path", "path", session_level=False),
    "event": FieldSpec("Event name", "event_name", session_level=False),
    "referrer": FieldSpec("Referrer URL", "referrer", session_level=True),
    "referrer_name": FieldSpec("Referrer", "referrer_name", session_level=True),
    "utm_source": FieldSpec("UTM source", "utm_source", session_level=True),
    "utm_medium": FieldSpec("UTM medium", "utm_medium", session_level=True),
    "utm_campaign": FieldSpec("UTM campaign", "utm_campaign", session_level=True),
    "country": FieldSpec("Country", "country", session_level=True),
    "region": FieldSpec("Region", "region", session_level=True),
    "city": FieldSpec("City", "city", session_level=True),
    "browser": FieldSpec("Browser", "browser", session_level=True),
    "os": FieldSpec("Operating system", "os", session_level=True),
    "device": FieldSpec("Device", "device", session_level=True),
}


class FilterError(ValueError):
    """A filter that names an unknown field or operator, or carries an unusable value."""


@dataclass(frozen=True)
class Filter:
    field: str  # a key of FIELDS, or "prop:<property key>"
    op: Op
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.op, Op):
            try:
                object.__setattr__(self, "op", Op(self.op))
            except ValueError:
                raise FilterError(f"unknown filter operator {self.op!r}") from None
        if self.property_key is None and self.field not in FIELDS:
            raise FilterError(f"unknown filter field {self.field!r}")
        if self.property_key == "" or URL_SEPARATOR in (self.property_key or ""):
            raise FilterError("an event property filter needs a key without '|'")
        if len(self.value) > MAX_VALUE_LENGTH:
            raise FilterError(f"filter values are limited to {MAX_VALUE_LENGTH} characters")

    @property
    def property_key(self) -> str | None:
        if self.field.startswith(PROPERTY_PREFIX):
            return self.field[len(PROPERTY_PREFIX):]
        return None

    @property
    def session_level(self) -> bool:
        return self.property_key is None and FIELDS[self.field].session_level

    @property
    def label(self) -> str:
        key = self.property_key
        name = f"property {key}" if key is not None else FIELDS[self.field].label
        return f"{name} {OP_LABELS[self.op]} {self.value!r}"

    def to_url(self) -> str:
        return URL_SEPARATOR.join((self.field, self.op.value, self.value))

    @classmethod
    def from_url(cls, text: str) -> Filter:
        parts = text.split(URL_SEPARATOR, 2)
        if len(parts) != 3:
            raise FilterError(f"a filter in the URL looks like field|op|value, not {text!r}")
        # __post_init__ turns the text operator into an Op or raises FilterError
        return cls(parts[0], parts[1], parts[2])  # type: ignore[arg-type]


Filters = tuple[Filter, ...]


@dataclass(frozen=True)
class SqlFragment:
    """A boolean SQL expression and the parameters it binds ('1' when there is nothing)."""

    sql: str
    params: dict[str, Any]

    @classmethod
    def true(cls) -> SqlFragment:
        return cls("1", {})


def _condition(column_sql: str, op: Op, value_param: str) -> str:
    placeholder = f"{{{value_param}:String}}"
    if op is Op.IS:
        return f"{column_sql} = {placeholder}"
    if op is Op.IS_NOT:
        return f"{column_sql} != {placeholder}"
    return f"positionCaseInsensitiveUTF8({column_sql}, {placeholder}) > 0"


def compile_filters(filters: Iterable[Filter], *, prefix: str = "f",
                    column: str | None = None) -> SqlFragment:
    """AND together the filters' conditions on columns of events_current (or the sessions mart).

    ``prefix`` keeps parameter names apart when one query compiles several filter sets.
    ``column`` compares every filter's value with that one column instead of the field's own
    (the ``value`` column of a per-field state mart).
    """
    conditions: list[str] = []
    params: dict[str, Any] = {}
    for index, item in enumerate(filters):
        value_param = f"{prefix}{index}_value"
        params[value_param] = item.value
        key = item.property_key
        if column is not None:
            column_sql = column
        elif key is None:
            column_sql = FIELDS[item.field].column
        else:
            key_param = f"{prefix}{index}_key"
            params[key_param] = key
            column_sql = f"properties[{{{key_param}:String}}]"
        conditions.append(_condition(column_sql, item.op, value_param))
    if not conditions:
        return SqlFragment.true()
    return SqlFragment(" and ".join(f"({c})" for c in conditions), params)


def accepts_empty(item: Filter) -> bool:
    """Whether ``item``'s SQL condition (``_condition``) keeps an empty value: '' is '', is not
    anything else, and contains only '' (ClickHouse finds '' at position 1 of any string)."""
    if item.op is Op.IS_NOT:
        return item.value != ""
    return item.value == ""


def one_event_field(filters: Sequence[Filter]) -> str | None:
    """The event-level field every filter is on, when the filters could be answered from the
    per-field day states (daily_event_value_states_current); otherwise None.

    Every event has one name and one path, so any conditions on either match a set of values.
    An event without a property has no row for it, while a filter reads its value as '': a
    property's conditions qualify only if together they refuse ''.
    """
    fields = {item.field for item in filters}
    if len(fields) != 1 or any(item.session_level for item in filters):
        return None
    field = fields.pop()
    if field.startswith(PROPERTY_PREFIX) and all(accepts_empty(item) for item in filters):
        return None
    return field


def api_field(name: str, property_prefix: str, fields: Mapping[str, str]) -> str | None:
    """A read API's filter name as a ``Filter`` field: ``<property_prefix><key>`` names the
    event property ``key``, others go through the API's own ``fields`` table; None if unknown."""
    if name.startswith(property_prefix) and len(name) > len(property_prefix):
        return PROPERTY_PREFIX + name[len(property_prefix):]
    return fields.get(name)


def split_by_level(filters: Sequence[Filter]) -> tuple[Filters, Filters]:
    """(session-level filters, event-level filters) — the input of the table decider."""
    return (tuple(f for f in filters if f.session_level),
            tuple(f for f in filters if not f.session_level))


def parse_url_filters(values: Iterable[str]) -> tuple[Filters, list[str]]:
    """Filters from the URL's repeated ``f`` parameter; unusable ones are reported, not applied."""
    parsed: list[Filter] = []
    errors: list[str] = []
    for text in values:
        try:
            parsed.append(Filter.from_url(text))
        except FilterError as error:
            errors.append(str(error))
    return tuple(parsed), errors
