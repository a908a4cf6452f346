"""The event contract: parse and validate a JSON object into an `Event`.

Every entry point (REST, websockets, webhooks, the SDK, internal emits, the admin) goes through
`parse_event` / `parse_events`. Plain Python on purpose: it validates ~10x faster than a general
schema library on the ingest hot path and gives us the exact field paths we report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings

RESOURCE_ID = "prefect.resource.id"
RESOURCE_ROLE = "prefect.resource.role"
RESOURCE_NAME = "prefect.resource.name"
# The largest whole number a client may send in any request (a count, an offset, a threshold):
# 32 bits, which every column, orjson and a JavaScript client hold exactly. A larger one is a 422
# where it comes in, never an overflow further on.
MAX_CLIENT_INT = 2**31 - 1
NAME_LABELS = (RESOURCE_NAME, "prefect.name", "prefect-cloud.name")
# Levels of nesting in an event, the event object itself being the first: orjson writes 254 and
# refuses more (the payload, stored on its own, is then at most 253 deep).
MAX_DEPTH = 254
# Audit events (Prefect Cloud's names) and eventsite's own: refused from any client or template
# (422 / a rejected frame / a failed webhook request), so the audit log cannot be forged.
RESERVED_PREFIXES = ("prefect-cloud.", "eventsite.")


@dataclass(frozen=True, slots=True)
class Limits:
    name_length: int = 1024
    labels_per_resource: int = 500
    related_resources: int = 100
    size_bytes: int = 1_500_000

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            name_length=settings.EVENTSITE_MAX_EVENT_NAME_LENGTH,
            labels_per_resource=settings.EVENTSITE_MAX_LABELS_PER_RESOURCE,
            related_resources=settings.EVENTSITE_MAX_RELATED_RESOURCES,
            size_bytes=settings.EVENTSITE_MAX_EVENT_SIZE_BYTES,
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one event: where (a path of keys) and what."""

    loc: tuple[str | int, ...]
    message: str
    too_large: bool = False

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in self.loc)

    def as_dict(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if index is not None:
            out = {"index": index, **out}
        return out


class EventInvalid(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.field or 'event'}: {p.message}" for p in problems))

    @property
    def too_large(self) -> bool:
        return any(p.too_large for p in self.problems)


@dataclass(slots=True)
class Event:
    """A validated event. `received` is set by the write path, never taken from a client."""

    occurred: datetime
    event: str
    resource: dict[str, str]
    related: list[dict[str, str]] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    follows: uuid.UUID | None = None
    received: datetime | None = None

    @property
    def resource_id(self) -> str:
        return self.resource[RESOURCE_ID]

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Event:
        """Rebuild a stored event from its `to_wire()` form (trusted: no validation)."""
        return cls(
            occurred=datetime.fromisoformat(data["occurred"]),
            event=data["event"],
            resource=data["resource"],
            related=data["related"],
            payload=data["payload"],
            id=uuid.UUID(data["id"]),
            follows=uuid.UUID(data["follows"]) if data.get("follows") else None,
            received=datetime.fromisoformat(data["received"]) if data.get("received") else None,
        )

    def to_wire(self) -> dict[str, Any]:
        """The ReceivedEvent JSON shape, keys in Prefect's order."""
        return {
            "occurred": isoformat(self.occurred),
            "event": self.event,
            "resource": self.resource,
            "related": self.related,
            "payload": self.payload,
            "id": str(self.id),
            "follows": str(self.follows) if self.follows else None,
            "received": isoformat(self.received) if self.received else None,
        }


def isoformat(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resource_name(labels: dict[str, str]) -> str:
    for key in NAME_LABELS:
        if labels.get(key):
            return labels[key]
    return labels.get(RESOURCE_ID, "")


def parse_datetime(value: Any) -> datetime:
    """An RFC 3339 string (or a datetime) as an aware UTC datetime; naive values are UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 / RFC 3339 timestamp") from None
    else:
        raise ValueError("must be an ISO 8601 / RFC 3339 timestamp string")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError("must be a valid UUID") from None


def _labels(
    value: Any, loc: tuple, problems: list[Problem], limits: Limits, *, related: bool
) -> dict:
    if not isinstance(value, dict):
        problems.append(Problem(loc, "must be an object of label → string"))
        return {}
    if len(value) > limits.labels_per_resource:
        problems.append(
            Problem(
                loc, f"has {len(value)} labels; at most {limits.labels_per_resource} are allowed"
            )
        )
    for key, label in value.items():
        if not isinstance(label, str):
            problems.append(Problem((*loc, key), "label values must be strings"))
    if not value.get(RESOURCE_ID):
        problems.append(Problem((*loc, RESOURCE_ID), "is required and must not be empty"))
    if related and not value.get(RESOURCE_ROLE):
        problems.append(Problem((*loc, RESOURCE_ROLE), "is required on a related resource"))
    return value


def reserved(name: str) -> bool:
    """Whether `name` is one only eventsite itself may emit (`RESERVED_PREFIXES`)."""
    return name.startswith(RESERVED_PREFIXES)


def parse_event(
    data: Any, *, limits: Limits, size: int | None = None, allow_reserved: bool = False
) -> Event:
    """Validate one event object; raise `EventInvalid` listing every problem found.

    Whatever passes can be stored on both backends: nesting, NUL characters and lone surrogates
    are refused here, never by the database. (`size` is accepted for the callers that know a
    bound; the event is serialised anyway, to prove it storable.)

    Names under `RESERVED_PREFIXES` (audit events, eventsite's own) are refused unless
    `allow_reserved` (`ingest.internal_event`, for the events eventsite makes itself).
    """
    if not isinstance(data, dict):
        raise EventInvalid([Problem((), "each event must be a JSON object")])
    problems: list[Problem] = []

    # Serialising (C speed) also proves the event is storable: orjson's writer refuses nesting
    # past `MAX_DEPTH` and lone surrogates, and PostgreSQL refuses NUL, which it writes as
    # `\u0000`. Only an event that fails is walked, to say where.
    try:
        encoded = orjson.dumps(data)
    except (orjson.JSONEncodeError, TypeError):
        encoded = None
    if encoded is None or b"\\u0000" in encoded:  # (or an escaped backslash before "u0000")
        found = unstorable(data)
        if found or encoded is None:
            raise EventInvalid(found or [Problem((), "cannot be stored as JSON")])
    size = len(encoded)
    if size > limits.size_bytes:
        problems.append(
            Problem(
                (),
                f"is {size} bytes; at most {limits.size_bytes} bytes are allowed",
                too_large=True,
            )
        )

    occurred = event_id = follows = None
    try:
        occurred = parse_datetime(_required(data, "occurred"))
    except (KeyError, ValueError) as exc:
        problems.append(Problem(("occurred",), _message(exc)))

    name = data.get("event")
    if "event" not in data:
        problems.append(Problem(("event",), "is required"))
    elif not isinstance(name, str):
        problems.append(Problem(("event",), "must be a string"))
    elif len(name) > limits.name_length:
        problems.append(
            Problem(
                ("event",), f"is {len(name)} characters; at most {limits.name_length} are allowed"
            )
        )
    elif not allow_reserved and reserved(name):
        problems.append(
            Problem(
                ("event",),
                f"{name!r} is reserved: names starting with "
                f"{' or '.join(repr(p) for p in RESERVED_PREFIXES)} come only from eventsite itself",
            )
        )

    if "resource" not in data:
        problems.append(Problem(("resource",), "is required"))
        resource = {}
    else:
        resource = _labels(data["resource"], ("resource",), problems, limits, related=False)

    related = data.get("related")
    if related is None:
        related = []
    elif not isinstance(related, list):
        problems.append(Problem(("related",), "must be an array of resources"))
        related = []
    elif len(related) > limits.related_resources:
        problems.append(
            Problem(
                ("related",),
                f"has {len(related)} resources; at most {limits.related_resources} are allowed",
            )
        )
    else:
        for i, item in enumerate(related):
            _labels(item, ("related", i), problems, limits, related=True)

    payload = data.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        problems.append(Problem(("payload",), "must be a JSON object"))

    try:
        event_id = parse_uuid(_required(data, "id"))
    except (KeyError, ValueError) as exc:
        problems.append(Problem(("id",), _message(exc)))

    if data.get("follows") is not None:
        try:
            follows = parse_uuid(data["follows"])
        except ValueError as exc:
            problems.append(Problem(("follows",), str(exc)))

    if problems:
        raise EventInvalid(problems)
    return Event(
        occurred=occurred,
        event=name,
        resource=resource,
        related=related,
        payload=payload,
        id=event_id,
        follows=follows,
    )


def parse_events(
    items: list[Any],
    *,
    limits: Limits,
    body_size: int | None = None,
    allow_reserved: bool = False,
):
    """Validate a batch. Returns (events, problems) where problems are `(index, Problem)` pairs.

    When the whole body is within the per-event size limit, no event can exceed it, so the
    per-event size is not recomputed (it costs a serialisation per event).
    """
    size = 0 if body_size is not None and body_size <= limits.size_bytes else None
    events: list[Event] = []
    problems: list[tuple[int, Problem]] = []
    for index, item in enumerate(items):
        try:
            events.append(
                parse_event(item, limits=limits, size=size, allow_reserved=allow_reserved)
            )
        except EventInvalid as exc:
            problems.extend((index, p) for p in exc.problems)
    return events, problems


def _printable(key: Any) -> str | int:
    """A key as a problem's field path shows it: NUL and lone surrogates escaped."""
    if isinstance(key, int):
        return key
    text = str(key).replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (invalid Unicode), which cannot be stored"
    return None


def unstorable(data: Any, *, most: int = 10) -> list[Problem]:
    """Where `data` holds what the store would refuse: nesting deeper than `MAX_DEPTH`, NUL
    characters, lone surrogates, keys that are not strings, values that are not JSON."""
    problems: list[Problem] = []
    stack: list[tuple[Any, tuple, int]] = [(data, (), 1)]
    while stack and len(problems) < most:
        value, loc, depth = stack.pop()
        if isinstance(value, str):
            message = _string_problem(value)
            if message:
                problems.append(Problem(loc, message))
        elif isinstance(value, dict | list | tuple):
            if depth > MAX_DEPTH:
                where = (*loc[:6], "…") if len(loc) > 6 else loc
                problems.append(
                    Problem(where, f"is nested more than {MAX_DEPTH} levels deep; not stored")
                )
                continue
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in pairs:
                if isinstance(value, dict):
                    if not isinstance(key, str):
                        problems.append(Problem((*loc, _printable(key)), "keys must be strings"))
                        continue
                    message = _string_problem(key)
                    if message:
                        problems.append(Problem((*loc, _printable(key)), f"the key {message}"))
                        continue
                stack.append((item, (*loc, _printable(key)), depth + 1))
        elif not isinstance(value, int | float | bool | type(None) | datetime | uuid.UUID):
            problems.append(Problem(loc, f"is a {type(value).__name__}, not a JSON value"))
    return problems


def _required(data: dict, key: str) -> Any:
    value = data.get(key)
    if value is None:
        raise KeyError(key)
    return value


def _message(exc: Exception) -> str:
    return "is required" if isinstance(exc, KeyError) else str(exc)
