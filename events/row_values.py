"""Stored column values as Python values, fast: the read path's decoders for ids and datetimes
(a replay or the engine decodes hundreds of thousands per read)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.db import connection
from django.db.models import TextField, Value
from django.db.models.functions import Cast, Concat

_new_uuid = object.__new__
_set_uuid = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # looked up once: an enum member's lookup is slow


def uuid_value(value) -> uuid.UUID:
    """An id column (SQLite: 32 hex digits; PostgreSQL: a UUID) as a UUID."""
    if isinstance(value, uuid.UUID):
        return value
    if len(value) == 32:  # SQLite's 32 hex digits: built without UUID.__init__'s checks (3x)
        made = _new_uuid(uuid.UUID)
        _set_uuid(made, "int", int(value, 16))
        _set_uuid(made, "is_safe", _UNKNOWN_SAFETY)
        return made
    return uuid.UUID(value)


_NAIVE_EPOCH = datetime(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_text(name: str):
    """A datetime column as text `aware` reads (with its UTC offset on every backend)."""
    text = Cast(name, TextField())
    if connection.vendor == "sqlite":
        return Concat(text, Value("+00:00"), output_field=TextField())
    return text


_fromisoformat = datetime.fromisoformat


def aware(value) -> datetime:
    """A datetime column read by `utc_text`, as an aware datetime."""
    if isinstance(value, str):
        try:
            parsed = _fromisoformat(value)
        except ValueError:  # (SQLite text that had an offset already: "+00:00" added twice)
            return datetime_value(value.removesuffix("+00:00"))
        return parsed if parsed.tzinfo else datetime_value(parsed)
    return datetime_value(value)


def datetime_value(value) -> datetime:
    # Text is SQLite's naive UTC or PostgreSQL's timestamptz in the session's zone (UTC, "+00").
    # A naive value is made aware by adding it to an aware epoch: exact, and 5x faster than
    # `.replace(tzinfo=UTC)`.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else _UTC_EPOCH + (value - _NAIVE_EPOCH)
