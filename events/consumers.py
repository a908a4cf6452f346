"""The feed page's live socket (`/ws/feed/`): rows for newly stored events that match the page.

The page connects with its own query string; the consumer reads it through the same FilterSet as
the page, so both use one `EventFilter` — in SQL for the page, `matches()` in memory here — and
renders the same `_event_row.html` the page does. Events come from the store through the
process's live reader (`events.live`); a page that cannot keep up is closed with 1013 and a
reason, and its reconnect (with `live_after`, the newest `received` it has) backfills the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict
from django.template.loader import render_to_string
from django.utils import timezone

from events import live, queries, schema
from events.accounts import revocation
from events.accounts.roles import Capability, allows
from events.filters import EventFilter
from events.forms import FeedFilterSet
from events.models import Event

logger = logging.getLogger(__name__)

ROW_TEMPLATE = "events/_event_row.html"
BACKFILL_LIMIT = 200
# Catch-up after a (re)connect looks at events received since the page last heard; an event
# received then but occurred long before is rare, and bounding occurred keeps the lookup indexed.
BACKFILL_OCCURRED_SLACK = timedelta(hours=1)
BACKFILL_MAX_AGE = timedelta(hours=1)


def render_rows(events: list) -> str:
    """Rows newest first, through the one row template."""
    events = sorted(events, key=lambda e: (e.occurred, e.id.hex), reverse=True)
    return "".join(render_to_string(ROW_TEMPLATE, {"event": e}) for e in events)


def _row(event) -> str:
    return render_to_string(ROW_TEMPLATE, {"event": event})


def _one_row_message(item: live.LiveEvent) -> str:
    """One live row as the page's message, built once per event for every page it goes to."""
    html = item.cached("row", _row)
    return item.cached(
        "row message",
        lambda _event: json.dumps({"type": "rows", "count": 1, "backfill": False, "html": html}),
    )


class FeedConsumer(AsyncWebsocketConsumer):
    # No channel of its own: rows come from the process's tail (`events.live`), so a channel
    # layer that fails (Redis restarting) cannot take the socket down with it.
    channel_layer_alias = None
    event_filter: EventFilter | None = None
    subscription: live.Subscription | None = None
    sender: asyncio.Task | None = None
    watch: revocation.Watch | None = None
    # Rows waiting for a page that reads slowly (the socket's send waits on a full buffer).
    max_pending = 5_000

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        params = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        # The audit trail is for admins; a role taken away (or a deactivated account) later
        # closes the socket (`revocation`).
        needed = Capability.ADMIN if params.get("scope") == "audit" else Capability.READ
        if not await database_sync_to_async(allows)(user, needed):
            await self.close(code=4403)
            return
        filterset = FeedFilterSet(params, scope=params.get("scope"))
        # Like the page: invalid parameters are left out and the valid ones still apply.
        filterset.is_valid()
        try:
            self.event_filter = filterset.event_filter(live=True)
        except ValueError:
            await self.close(code=4400)
            return
        # Follow the log first, then read the backfill: an event stored in between arrives
        # both ways (the page skips a row it has), rather than neither way.
        self.subscription = await live.subscribe(
            self.event_filter, max_pending=self.max_pending, on_too_slow=self._too_slow
        )
        await self.accept()
        self.watch = revocation.watch(user_id=user.pk, capability=needed, close=self._revoked)
        if after := _parse_time(params.get("live_after")):
            # From a little before the page's newest row: a row can arrive ahead of others stored
            # just before it (late commits, a process's own commits); the page skips rows it has.
            # Never from before the page was rendered (`rendered`): what was stored by then is on
            # the page or on its next pages, and counted in its total already.
            since = after - live.LONG_OVERLAP
            if rendered := _parse_time(params.get("rendered")):
                since = max(since, rendered)
            events = await self._backfill(since)
            if events:
                await self._send_rows(events, backfill=True)
        self.sender = asyncio.create_task(self._send_live())

    async def disconnect(self, code: int) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.subscription is not None:
            self.subscription.close()
        if self.sender is not None and self.sender is not asyncio.current_task():
            self.sender.cancel()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))

    async def _send_live(self) -> None:
        # Under eventsite's server an idle page is sent each new row at once, by the tail.
        send_now = (self.scope.get("extensions") or {}).get(live.SEND_NOW_EXTENSION)
        sink = send_now and (lambda items: send_now([_one_row_message(item) for item in items]))
        while True:
            items = await self.subscription.take(sink)
            rows = [(item.event, item.cached("row", _row)) for item in items]
            rows.sort(key=lambda pair: (pair[0].occurred, pair[0].id.hex), reverse=True)
            html = "".join(row for _event, row in rows)
            await self.send(
                text_data=json.dumps(
                    {"type": "rows", "count": len(rows), "backfill": False, "html": html}
                )
            )

    async def _revoked(self, reason: str) -> None:
        if self.subscription is not None:
            self.subscription.close()
        if self.sender is not None:
            self.sender.cancel()
        await self.close(code=1008, reason=reason)

    def _too_slow(self, reason: str) -> None:
        logger.warning("feed: a page fell %d rows behind; closing", self.max_pending)
        if self.sender is not None:
            self.sender.cancel()
        asyncio.get_running_loop().create_task(self.close(code=live.TOO_SLOW, reason=reason[:120]))

    async def _send_rows(self, events: list, *, backfill: bool = False) -> None:
        html = render_rows(events)
        await self.send(
            text_data=json.dumps(
                {"type": "rows", "count": len(events), "backfill": backfill, "html": html}
            )
        )

    @database_sync_to_async
    def _backfill(self, after: datetime) -> list[Event]:
        return queries.received_since(
            self.event_filter,
            after,
            occurred_since=after - BACKFILL_OCCURRED_SLACK,
            limit=BACKFILL_LIMIT,
        )


def _parse_time(value: str | None) -> datetime | None:
    """The page's last-heard time; ignored when unreadable or too old to be worth catching up."""
    if not value:
        return None
    try:
        parsed = schema.parse_datetime(value)
    except ValueError:
        return None
    return max(parsed, timezone.now() - BACKFILL_MAX_AGE)
