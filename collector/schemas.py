"""The OpenPanel wire protocol as pydantic models: one model per message type.

``parse_message`` turns one decoded JSON value into a typed message or raises
``MessageError`` with a sentence saying what is wrong (the API answers it as a 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MAX_NAME = 200
MAX_PROPERTIES = 200
MAX_KEY = 200
MAX_VALUE = 8_000
RESERVED_EVENT_NAMES = frozenset({"session_start", "session_end"})
# C0 controls except tab/newline, DEL, and the C1 block: never part of a name or key.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class MessageError(ValueError):
    """A message that cannot be accepted; the text says why."""


def _check_text(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains control characters")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)]
ProfileId = Annotated[str | int, Field(union_mode="left_to_right")]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=MAX_VALUE)


def _check_properties(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > MAX_PROPERTIES:
        raise ValueError(f"at most {MAX_PROPERTIES} properties are accepted, got {len(value)}")
    for key in value:
        if not key or len(key) > MAX_KEY:
            raise ValueError(f"property names must be 1-{MAX_KEY} characters")
        _check_text(key, f"property name {key[:40]!r}")
    return value


class TrackPayload(_Payload):
    name: Name
    properties: dict[str, Any] | None = None
    profileId: ProfileId | None = None  # noqa: N815 (wire name)
    groups: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value in RESERVED_EVENT_NAMES:
            raise ValueError(f"'{value}' is reserved: sessions are derived by Trackhouse")
        return _check_text(value, "the event name")

    _props = field_validator("properties")(_check_properties)


class IdentifyPayload(_Payload):
    profileId: ProfileId  # noqa: N815
    firstName: str | None = Field(default=None, max_length=MAX_NAME)  # noqa: N815
    lastName: str | None = Field(default=None, max_length=MAX_NAME)  # noqa: N815
    # a plain shape check (one @, a dotted domain): deliverability is not the collector's job
    email: Annotated[str, StringConstraints(max_length=320, pattern=EMAIL_SHAPE)] | None = None
    avatar: Annotated[str, StringConstraints(pattern=r"^(https?://|data:image/)\S+$")] | None = None
    properties: dict[str, Any] | None = None

    _props = field_validator("properties")(_check_properties)


class IncrementPayload(_Payload):
    profileId: ProfileId  # noqa: N815
    property: Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY)]
    value: float = Field(default=1, gt=0, allow_inf_nan=False)


class GroupPayload(_Payload):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)] | None = None
    name: str | None = Field(default=None, max_length=MAX_NAME)
    properties: dict[str, Any] | None = None

    _props = field_validator("properties")(_check_properties)


class AssignGroupPayload(_Payload):
    groupIds: list[str] = Field(default_factory=list, max_length=100)  # noqa: N815
    profileId: ProfileId | None = None  # noqa: N815


class TrackMessage(BaseModel):
    type: Literal["track"]
    payload: TrackPayload
    clientId: str | None = None  # noqa: N815
    clientSecret: str | None = None  # noqa: N815


class IdentifyMessage(BaseModel):
    type: Literal["identify"]
    payload: IdentifyPayload
    clientId: str | None = None  # noqa: N815
    clientSecret: str | None = None  # noqa: N815


class IncrementMessage(BaseModel):
    type: Literal["increment"]
    payload: IncrementPayload
    clientId: str | None = None  # noqa: N815
    clientSecret: str | None = None  # noqa: N815


class DecrementMessage(BaseModel):
    type: Literal["decrement"]
    payload: IncrementPayload
    clientId: str | None = None  # noqa: N815
    clientSecret: str | None = None  # noqa: N815


class GroupMessage(BaseModel):
    type: Literal["group"]
    payload: GroupPayload
    clientId: str | None = None  # noqa: N815
    clientSecret: str | None = None  # noqa: N815


class AssignGroupMessage(BaseModel):
    type: Literal["assign_group"]
    payload: AssignGroupPayload
    clientId: str | None = None  # noqa: N815
    clientSecret: str | None = None  # noqa: N815


Message = Annotated[
    TrackMessage | IdentifyMessage | IncrementMessage | DecrementMessage | GroupMessage
    | AssignGroupMessage,
    Field(discriminator="type"),
]
_MESSAGE = TypeAdapter(Message)
MESSAGE_TYPES = ("track", "identify", "increment", "decrement", "group", "assign_group")


def describe(error: ValidationError) -> str:
    """One readable sentence from a pydantic error (the first few problems)."""
    parts = []
    for item in error.errors(include_url=False)[:3]:
        location = ".".join(str(p) for p in item["loc"] if p not in MESSAGE_TYPES)
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


@dataclass(slots=True)
class PlainTrackPayload:
    """A ``track`` payload that passed ``plain_track``'s checks (TrackPayload's fields)."""

    name: str
    properties: dict[str, Any] | None
    profileId: str | int | None  # noqa: N815 (wire name)
    groups: list[str] | None


@dataclass(slots=True)
class PlainTrackMessage:
    payload: PlainTrackPayload
    type: str = "track"


_TRACK_MESSAGE_KEYS = frozenset({"type", "payload", "clientId", "clientSecret"})
_TRACK_PAYLOAD_KEYS = frozenset({"name", "properties", "profileId", "groups"})


# Event names and property keys repeat across events: their verdicts are cached (bounded).
@lru_cache(maxsize=4_096)
def _plain_name(name: str) -> bool:
    return (0 < len(name) <= MAX_NAME and name == name.strip()
            and name not in RESERVED_EVENT_NAMES and not _CONTROL.search(name))


@lru_cache(maxsize=4_096)
def _plain_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY and not _CONTROL.search(key)


def plain_track(value: Any) -> PlainTrackMessage | None:
    """The common case without pydantic: a ``track`` message whose every field is plainly
    valid (what TrackMessage would accept unchanged), or None to let ``parse_message``
    decide (and word any error). Batches spend most of their validation time here."""
    if type(value) is not dict or value.get("type") != "track" or not (
            value.keys() <= _TRACK_MESSAGE_KEYS):
        return None
    payload = value.get("payload")
    if type(payload) is not dict or not payload.keys() <= _TRACK_PAYLOAD_KEYS:
        return None
    for credential in ("clientId", "clientSecret"):
        if type(value.get(credential, "")) is not str and value.get(credential) is not None:
            return None
    name = payload.get("name")
    if type(name) is not str or not _plain_name(name):
        return None
    properties = payload.get("properties")
    if properties is not None:
        if type(properties) is not dict or len(properties) > MAX_PROPERTIES:
            return None
        for key in properties:
            if not _plain_key(key):
                return None
    profile = payload.get("profileId")
    if profile is not None and not (
            (type(profile) is str and len(profile) <= MAX_VALUE) or type(profile) is int):
        return None
    groups = payload.get("groups")
    if groups is not None and not (type(groups) is list and all(
            type(group) is str and len(group) <= MAX_VALUE for group in groups)):
        return None
    return PlainTrackMessage(PlainTrackPayload(name, properties, profile, groups))


def parse_message(value: Any) -> Message | PlainTrackMessage:
    """Validate one decoded message; raise ``MessageError`` saying what is wrong."""
    plain = plain_track(value)
    if plain is not None:
        return plain
    if not isinstance(value, dict):
        raise MessageError("a message must be a JSON object with 'type' and 'payload'")
    kind = value.get("type")
    if kind == "alias":
        raise MessageError("'alias' is not supported (OpenPanel rejects it too)")
    if kind not in MESSAGE_TYPES:
        raise MessageError(f"unknown message type {str(kind)[:40]!r}; expected one of "
                           f"{', '.join(MESSAGE_TYPES)}")
    try:
        return _MESSAGE.validate_python(value)
    except ValidationError as error:
        raise MessageError(describe(error)) from None


def message_json_schema() -> dict[str, Any]:
    """The JSON schema of one message, for the OpenAPI document."""
    return _MESSAGE.json_schema(ref_template="#/components/schemas/{model}")
