"""Python values → SQL parameters for the engine's plain-SQL writes (both databases)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from django.db import connection


def sql_adapters():
    """Python values → SQL parameters for the plain-SQL writes (both databases)."""
    native_uuid = connection.features.has_native_uuid_field
    adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor == "sqlite":
        # What Django's SQLite adapter produces (naive UTC text), without its per-call checks.
        def adapt(value: datetime) -> str:
            return str(value.astimezone(UTC).replace(tzinfo=None))

    def uid(value: uuid.UUID):
        return value if native_uuid else value.hex

    def js(value) -> str:
        return orjson.dumps(value).decode()

    return uid, adapt, js, "%s::jsonb" if connection.vendor == "postgresql" else "%s"
