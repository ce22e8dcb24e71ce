"""The filter compiler: a whitelist of fields, every value and property key bound as a parameter."""

from __future__ import annotations

import pytest

from queries.filters import (
    FIELDS,
    Filter,
    FilterError,
    Op,
    compile_filters,
    one_event_field,
    parse_url_filters,
    split_by_level,
)

HOSTILE = [
    "' OR 1=1 --",
    "x') or 1=1 or ('",
    "{project:String}",
    "\\'; drop table trackhouse.events; --",
    "%' union all select * from system.users --",
    "`name`",
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("op", list(Op))
def test_values_never_reach_the_sql_text(value: str, op: Op) -> None:
    benign = compile_filters([Filter("country", op, "DE")])
    hostile = compile_filters([Filter("country", op, value)])
    assert hostile.sql == benign.sql  # the text does not depend on the value at all
    assert value not in hostile.sql
    assert hostile.params == {"f0_value": value}


@pytest.mark.parametrize("key", HOSTILE)
def test_property_keys_are_parameters_too(key: str) -> None:
    compiled = compile_filters([Filter(f"prop:{key}", Op.IS, "pro")])
    assert compiled.sql == "(properties[{f0_key:String}] = {f0_value:String})"
    assert compiled.params == {"f0_key": key, "f0_value": "pro"}


def test_operators_compile_to_fixed_expressions() -> None:
    compiled = compile_filters([Filter("path", Op.IS, "/a"), Filter("browser", Op.IS_NOT, "Chrome"),
                                Filter("utm_source", Op.CONTAINS, "news")], prefix="x")
    assert compiled.sql == (
        "(path = {x0_value:String}) and (browser != {x1_value:String}) and "
        "(positionCaseInsensitiveUTF8(utm_source, {x2_value:String}) > 0)")
    assert compiled.params == {"x0_value": "/a", "x1_value": "Chrome", "x2_value": "news"}


def test_no_filters_is_true() -> None:
    assert compile_filters([]).sql == "1"


@pytest.mark.parametrize("field", ["name; drop table x", "id", "1=1", "properties", ""])
def test_fields_off_the_whitelist_are_refused(field: str) -> None:
    with pytest.raises(FilterError):
        Filter(field, Op.IS, "x")


def test_unknown_operators_and_bad_property_keys_are_refused() -> None:
    with pytest.raises(FilterError):
        Filter("country", "like", "x")  # type: ignore[arg-type]
    with pytest.raises(FilterError):
        Filter("prop:", Op.IS, "x")
    with pytest.raises(FilterError):
        Filter("country", Op.IS, "x" * 501)


def test_url_round_trip_and_bad_url_filters_are_reported() -> None:
    original = Filter("prop:plan", Op.CONTAINS, "a|b ' OR 1=1 --")
    assert Filter.from_url(original.to_url()) == original
    parsed, errors = parse_url_filters(["country|is|DE", "nonsense", "id|is|1", "os|regex|x"])
    assert parsed == (Filter("country", Op.IS, "DE"),)
    assert len(errors) == 3


def test_table_decider_splits_session_and_event_fields() -> None:
    filters = (Filter("country", Op.IS, "DE"), Filter("path", Op.IS, "/"),
               Filter("event", Op.IS, "signup"), Filter("prop:plan", Op.IS, "pro"))
    session_level, event_level = split_by_level(filters)
    assert [f.field for f in session_level] == ["country"]
    assert [f.field for f in event_level] == ["path", "event", "prop:plan"]
    assert all(spec.column.isidentifier() for spec in FIELDS.values())


def test_api_field_maps_a_read_api_name_or_its_property_prefix() -> None:
    from queries.filters import api_field

    fields = {"path": "path", "os_version": "os"}
    assert api_field("properties.plan", "properties.", fields) == "prop:plan"
    assert api_field("os_version", "properties.", fields) == "os"
    assert api_field("properties.", "properties.", fields) is None  # a prefix without a key
    assert api_field("city_name", "properties.", fields) is None


def test_one_event_field_picks_filters_the_value_states_can_answer() -> None:
    assert one_event_field((Filter("event", Op.IS, "signup"),)) == "event"
    assert one_event_field((Filter("path", Op.CONTAINS, "docs"),
                            Filter("path", Op.IS_NOT, "/docs/x"))) == "path"
    assert one_event_field((Filter("prop:plan", Op.IS, "pro"),)) == "prop:plan"
    assert one_event_field((Filter("prop:plan", Op.CONTAINS, "pr"),)) == "prop:plan"
    # an event without the property reads '' and has no row: conditions that keep '' scan
    assert one_event_field((Filter("prop:plan", Op.IS_NOT, "pro"),)) is None
    assert one_event_field((Filter("prop:plan", Op.IS, ""),)) is None
    assert one_event_field((Filter("prop:plan", Op.CONTAINS, ""),)) is None
    assert one_event_field((Filter("prop:plan", Op.IS_NOT, "pro"),
                            Filter("prop:plan", Op.CONTAINS, "t"))) == "prop:plan"
    # every event has a name and a path: any condition on them qualifies
    assert one_event_field((Filter("path", Op.IS_NOT, "/"),)) == "path"
    # two fields, or a session field, are not one event field
    assert one_event_field((Filter("event", Op.IS, "signup"),
                            Filter("prop:plan", Op.IS, "pro"))) is None
    assert one_event_field((Filter("country", Op.IS, "DE"),)) is None
    assert one_event_field(()) is None


def test_a_column_override_compares_every_filter_with_that_column() -> None:
    compiled = compile_filters([Filter("prop:plan", Op.IS, "pro"),
                                Filter("prop:plan", Op.CONTAINS, "r")], prefix="v", column="value")
    assert compiled.sql == ("(value = {v0_value:String}) and "
                            "(positionCaseInsensitiveUTF8(value, {v1_value:String}) > 0)")
    assert compiled.params == {"v0_value": "pro", "v1_value": "r"}
