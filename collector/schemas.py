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
MAX_PROPERTIES = 200  # keys, counted at every level of nesting
MAX_KEY = 200  # characters of one key (at any level)
MAX_VALUE = 8_000
# Levels of objects and arrays in ``properties``, itself the first: dotted keys of at most 8
# parts. Checked before anything recurses into the properties (orjson stops at 255 levels).
MAX_DEPTH = 8
# Any part of a message (properties or not) nests at most this deep: a bound for the request
# fingerprint's orjson call and for pydantic, wider than MAX_DEPTH so properties get its text.
MAX_MESSAGE_DEPTH = 32
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


def _key_problem(key: Any, where: str) -> str | None:
    if type(key) is not str or _plain_key(key):
        return None  # list indices and valid keys
    if _CONTROL.search(key):
        return f"property name {key[:40]!r} contains control characters"
    inside = f" (in {where[:120]})" if where else ""
    return f"property names must be 1-{MAX_KEY} characters{inside}"


def _nested_problem(value: dict[str, Any] | list[Any], where: str, level: int,
                    total: int) -> tuple[int, str | None]:
    """(keys counted so far, what is wrong) for an object or array at ``level`` of the
    properties; recurses at most ``MAX_DEPTH`` levels."""
    if level > MAX_DEPTH:
        return total, (f"{where[:120]} is nested deeper than the {MAX_DEPTH} levels of "
                       f"objects and arrays accepted")
    if type(value) is dict:
        total += len(value)
        if total > MAX_PROPERTIES:
            return total, (f"at most {MAX_PROPERTIES} properties are accepted, nested ones "
                           f"included")
        items: Any = value.items()
    else:
        items = enumerate(value)
    for key, inner in items:
        problem = _key_problem(key, where)
        if problem is None and (type(inner) is dict or type(inner) is list):
            total, problem = _nested_problem(inner, f"{where}.{key}", level + 1, total)
        if problem is not None:
            return total, problem
    return total, None


def property_problem(properties: dict[str, Any]) -> str | None:
    """What is wrong with an event's or profile's properties, or None: at most
    ``MAX_PROPERTIES`` keys at all levels together, each of 1-``MAX_KEY`` characters without
    control characters, objects and arrays nested at most ``MAX_DEPTH`` levels."""
    total = len(properties)
    if total > MAX_PROPERTIES:
        return f"at most {MAX_PROPERTIES} properties are accepted, got {total}"
    for key, value in properties.items():
        if not _plain_key(key):
            return _key_problem(key, "")
        if type(value) is dict or type(value) is list:  # the common case: neither
            total, problem = _nested_problem(value, key, 2, total)
            if problem is not None:
                return problem
    return None


def _check_properties(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and (problem := property_problem(value)) is not None:
        raise ValueError(problem)
    return value


def too_deep(value: Any, levels: int, where: str = "") -> str | None:
    """The path of the first object or array nested more than ``levels`` deep in ``value``,
    or None (looks no deeper than that)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return None
    if levels == 0:
        return where or "the message"
    items = value.items() if kind is dict else enumerate(value)
    for key, inner in items:
        found = too_deep(inner, levels - 1, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=MAX_VALUE)

    # every message type may carry them (``__timestamp``, ``__eventId``, traits)
    properties: dict[str, Any] | None = None

    _props = field_validator("properties")(_check_properties)


class TrackPayload(_Payload):
    name: Name
    profileId: ProfileId | None = None  # noqa: N815 (wire name)
    groups: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value in RESERVED_EVENT_NAMES:
            raise ValueError(f"'{value}' is reserved: sessions are derived by Trackhouse")
        return _check_text(value, "the event name")


class IdentifyPayload(_Payload):
    profileId: ProfileId  # noqa: N815
    firstName: str | None = Field(default=None, max_length=MAX_NAME)  # noqa: N815
    lastName: str | None = Field(default=None, max_length=MAX_NAME)  # noqa: N815
    # a plain shape check (one @, a dotted domain): deliverability is not the collector's job
    email: Annotated[str, StringConstraints(max_length=320, pattern=EMAIL_SHAPE)] | None = None
    avatar: Annotated[str, StringConstraints(pattern=r"^(https?://|data:image/)\S+$")] | None = None


class IncrementPayload(_Payload):
    profileId: ProfileId  # noqa: N815
    property: Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY)]
    value: float = Field(default=1, gt=0, allow_inf_nan=False)


class GroupPayload(_Payload):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)] | None = None
    name: str | None = Field(default=None, max_length=MAX_NAME)


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
        for key, value in properties.items():
            if not _plain_key(key) or type(value) is dict or type(value) is list:
                if property_problem(properties) is not None:  # the complete check
                    return None
                break
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
    payload = value.get("payload")
    properties = payload.get("properties") if isinstance(payload, dict) else None
    # before the guard below, so that properties get the same answer at any depth
    if isinstance(properties, dict) and (problem := property_problem(properties)) is not None:
        raise MessageError(f"payload.properties: {problem}")
    if (where := too_deep(value, MAX_MESSAGE_DEPTH)) is not None:
        raise MessageError(f"{where[:200]}: nested deeper than {MAX_MESSAGE_DEPTH} levels of "
                           f"objects and arrays")
    try:
        return _MESSAGE.validate_python(value)
    except ValidationError as error:
        raise MessageError(describe(error)) from None


def message_json_schema() -> dict[str, Any]:
    """The JSON schema of one message for the OpenAPI document, self-contained: its models
    inlined where they are used (the routes embed it; nothing adds them to the document's
    components, where pydantic's references would point)."""
    schema = _MESSAGE.json_schema(ref_template="{model}")
    models = schema.pop("$defs", {})
    # its mapping names component schemas; each inlined message's "type" const says as much
    schema.pop("discriminator", None)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:  # the models do not refer to themselves
                return inline(models[node["$ref"]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return inline(schema)
