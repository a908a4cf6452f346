"""Deployment-wide locks seen from outside, as an operator would (PostgreSQL), and fresh databases
for tests that start a deployment of their own."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection

from eventsite.locks import lock_key

# Advisory locks belong to a database; a bigint key shows as classid (high 32 bits) and objid.
_HOLDERS = """
    SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
      AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _holders(cursor, name: str) -> list[tuple[int, str]]:
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    cursor.execute(_HOLDERS, [key >> 32, key & 0xFFFFFFFF])
    return [(pid, application) for pid, application in cursor.fetchall()]


def advisory_lock_holders(cursor, name: str) -> list[int]:
    """Backend pids of the sessions holding the deployment lock `name` in this database."""
    return [pid for pid, _ in _holders(cursor, name)]


def lock_holding_processes(cursor, name: str) -> list[int]:
    """Operating-system pids of the eventsite processes holding the deployment lock `name`."""
    found = []
    for _, application in _holders(cursor, name):
        match = re.search(r"\(pid (\d+)\)$", application)
        assert match, f"a lock held by an unnamed session: {application!r}"
        found.append(int(match.group(1)))
    return found


@contextmanager
def fresh_postgresql_database(purpose: str) -> Iterator[tuple[str, Callable]]:
    """A new, empty database on the suite's PostgreSQL server, dropped afterwards.

    Yields its URL and a function that opens a (psycopg, autocommit) connection to it.
    """
    name = f"deploy_{purpose}_{uuid.uuid4().hex[:12]}"
    params = {**connection.get_connection_params(), "dbname": "postgres"}
    admin = connection.Database.connect(**params, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    s = connection.settings_dict
    url = f"postgresql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"

    def connect():
        return connection.Database.connect(**{**params, "dbname": name}, autocommit=True)

    try:
        yield url, connect
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
