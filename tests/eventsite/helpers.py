"""Looking at deployment-wide locks from outside, as an operator would (PostgreSQL)."""

from __future__ import annotations

from eventsite.locks import lock_key


def advisory_lock_holders(cursor, name: str) -> list[int]:
    """Backend pids holding the advisory lock of `name` (a bigint key: classid high, objid low)."""
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    cursor.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s AND objsubid = 1",
        [key >> 32, key & 0xFFFFFFFF],
    )
    return [row[0] for row in cursor.fetchall()]
