"""Looking at deployment-wide locks from outside, as an operator would (PostgreSQL)."""

from __future__ import annotations

import re

from eventsite.locks import lock_key

_HOLDERS = """
    SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
      AND l.objsubid = 1
"""


def _holders(cursor, name: str) -> list[tuple[int, str]]:
    # A bigint advisory key shows as classid (high 32 bits) and objid (low 32 bits).
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    cursor.execute(_HOLDERS, [key >> 32, key & 0xFFFFFFFF])
    return [(pid, application) for pid, application in cursor.fetchall()]


def advisory_lock_holders(cursor, name: str) -> list[int]:
    """Backend pids of the sessions holding the deployment lock `name`."""
    return [pid for pid, _ in _holders(cursor, name)]


def lock_holding_processes(cursor, name: str) -> list[int]:
    """Operating-system pids of the eventsite processes holding the deployment lock `name`."""
    found = []
    for _, application in _holders(cursor, name):
        match = re.search(r"\(pid (\d+)\)$", application)
        assert match, f"a lock held by an unnamed session: {application!r}"
        found.append(int(match.group(1)))
    return found
