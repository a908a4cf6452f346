"""Open sockets follow revocation: a revoked token, a deactivated or demoted user loses its socket.

Every socket that was admitted for a capability (`events.accounts.roles`) registers a `Watch`.
One task per event loop re-reads, every `EVENTSITE_SOCKET_RECHECK` seconds, the tokens and users
of all open sockets in two queries, and closes (1008, with the reason) each socket whose token
was revoked, whose user was deactivated, or whose role or scope no longer allows what it does.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from events.accounts.models import ApiToken
from events.accounts.roles import Capability, grants

logger = logging.getLogger(__name__)

REVOKED = "Token revoked or its account deactivated"
NOT_ALLOWED_ANY_MORE = "Your role no longer allows this"


@dataclass(eq=False)
class Watch:
    """One open socket: whose it is, what it needs, and how to close it."""

    user_id: int
    capability: Capability
    close: Callable[[str], Awaitable[None]]
    token_id: int | None = None
    closed: bool = field(default=False)

    def stop(self) -> None:
        self.closed = True
        watches = _watches.get(asyncio.get_running_loop())
        if watches is not None:
            watches.discard(self)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[Watch]] = (
    weakref.WeakKeyDictionary()
)


def watch(
    *,
    user_id: int,
    capability: Capability,
    close: Callable[[str], Awaitable[None]],
    token_id: int | None = None,
) -> Watch:
    """Keep checking this socket's right to stay open until `Watch.stop()`."""
    loop = asyncio.get_running_loop()
    item = Watch(user_id=user_id, capability=capability, close=close, token_id=token_id)
    watches = _watches.get(loop)
    if watches is None:
        watches = _watches[loop] = set()
        loop.create_task(_check_forever(loop))
    watches.add(item)
    return item


async def _check_forever(loop: asyncio.AbstractEventLoop) -> None:
    while True:
        await asyncio.sleep(settings.EVENTSITE_SOCKET_RECHECK.total_seconds())
        watches = _watches.get(loop)
        if not watches:
            _watches.pop(loop, None)
            return
        try:
            await check(list(watches))
        except Exception:  # the database is away: check again next time
            logger.exception("socket revocation check failed")


async def check(watches: list[Watch]) -> None:
    """Close every watched socket that may not stay open."""
    token_ids = {w.token_id for w in watches if w.token_id is not None}
    user_ids = {w.user_id for w in watches if w.token_id is None}
    by_token, by_user = await _allowed_now(token_ids, user_ids)
    for item in watches:
        if item.closed:
            continue
        if item.token_id is not None:
            allowed = by_token.get(item.token_id)
            reason = REVOKED if allowed is None else NOT_ALLOWED_ANY_MORE
        else:
            allowed = by_user.get(item.user_id)
            reason = NOT_ALLOWED_ANY_MORE
        if allowed is None or item.capability not in allowed:
            item.stop()
            logger.info("closing a socket of user %s: %s", item.user_id, reason)
            await item.close(reason)


@database_sync_to_async
def _allowed_now(token_ids: set[int], user_ids: set[int]):
    by_token = {}
    if token_ids:
        tokens = (
            ApiToken.objects.active()
            .filter(pk__in=token_ids)
            .select_related("user")
            .prefetch_related("user__groups")
        )
        by_token = {t.pk: grants(t.user, t) for t in tokens}
    by_user = {}
    if user_ids:
        users = get_user_model().objects.filter(pk__in=user_ids).prefetch_related("groups")
        by_user = {u.pk: grants(u) for u in users}
    return by_token, by_user
