"""Python values → SQL parameters for the plain-SQL writes (the write path, the engine's state)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from django.db import connection


def sql_adapters():
    """(uuid, datetime, JSON) → parameter functions and the JSON placeholder, for this database."""
    native_uuid = connection.features.has_native_uuid_field
    adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor == "sqlite":
        # What Django's SQLite adapter produces (naive UTC text), without its per-call checks.
        def adapt(value: datetime | None) -> str | None:
            return None if value is None else str(value.astimezone(UTC).replace(tzinfo=None))

    elif connection.vendor == "postgresql":
        # psycopg adapts aware datetimes itself; Django's adapter only hands the value through.
        def adapt(value: datetime | None) -> datetime | None:
            return value

    def uid(value: uuid.UUID | None):
        if value is None:
            return None
        return value if native_uuid else value.hex

    def js(value) -> str:
        return orjson.dumps(value).decode()

    return uid, adapt, js, "%s::jsonb" if connection.vendor == "postgresql" else "%s"
