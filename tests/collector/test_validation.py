"""The fast paths of batch ingestion agree with the reference implementations: pydantic's
validation of ``track`` messages, and ``uuid.uuid5`` for derived ids."""

from __future__ import annotations

import uuid

import orjson
import pytest

from collector import identity
from collector.schemas import _MESSAGE, MessageError, parse_message, plain_track

PLAIN = [
    {"type": "track", "payload": {"name": "screen_view"}},
    {"type": "track", "payload": {"name": "purchase", "properties": {"__revenue": 10, "a": {
        "b": [1, 2]}}, "profileId": 42, "groups": ["acme"]}, "clientId": "c"},
    {"type": "track", "payload": {"name": "ünïcode ✓", "profileId": "u-1", "properties": None}},
]
# valid or not, these need pydantic: stripped names, extra fields, coercions, bad values
NOT_PLAIN = [
    {"type": "track", "payload": {"name": " padded "}},
    {"type": "track", "payload": {"name": "x", "extra": 1}},
    {"type": "track", "payload": {"name": "x", "profileId": 1.5}},
    {"type": "track", "payload": {"name": "x", "profileId": True}},
    {"type": "track", "payload": {"name": ""}},
    {"type": "track", "payload": {"name": "session_start"}},
    {"type": "track", "payload": {"name": "bad\x07name"}},
    {"type": "track", "payload": {"name": "x", "properties": {"": 1}}},
    {"type": "track", "payload": {"name": "x", "properties": {f"k{i}": i for i in range(201)}}},
    {"type": "track", "payload": {"name": "x", "groups": ["a", 1]}},
    {"type": "track", "payload": {"name": "x" * 201}},
    {"type": "track", "payload": "nope"},
    {"type": "track", "payload": {"name": "x"}, "clientSecret": 5},
    {"type": "identify", "payload": {"profileId": "u"}},
]


@pytest.mark.parametrize("message", PLAIN)
def test_plain_track_messages_match_pydantic(message: dict) -> None:
    fast = plain_track(message)
    assert fast is not None
    reference = _MESSAGE.validate_python(message).payload
    assert (fast.payload.name, fast.payload.properties, fast.payload.profileId,
            fast.payload.groups) == (reference.name, reference.properties, reference.profileId,
                                     reference.groups)


@pytest.mark.parametrize("message", NOT_PLAIN)
def test_everything_else_goes_through_pydantic(message: dict) -> None:
    assert plain_track(message) is None
    try:
        expected = _MESSAGE.validate_python(message)
    except Exception:  # the error parse_message words must come from pydantic
        with pytest.raises(MessageError):
            parse_message(message)
    else:
        assert parse_message(message) == expected


@pytest.mark.parametrize("parts", [("event", "p", "x"), ("request", "ff" * 16, 1_700_000_000_000),
                                   ("content", "p", "d", "ü", "2026-01-01", "/", "{}")])
def test_derived_uuid_is_uuid5(parts: tuple) -> None:
    expected = uuid.uuid5(identity.TRACKHOUSE_NAMESPACE, orjson.dumps(parts).decode())
    assert identity.derived_uuid(*parts) == str(expected)
