"""The feed page's live socket (`/ws/feed/`): rows for newly stored events that match the page.

The page connects with its own query string; the consumer reads it through the same FilterSet as
the page, so both use one `EventFilter` — in SQL for the page, `matches()` in memory here — and
renders the same `_event_row.html` the page does.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict
from django.template.loader import render_to_string
from django.utils import timezone

from events import queries, schema
from events.broadcast import Membership
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


class FeedConsumer(AsyncWebsocketConsumer):
    event_filter: EventFilter | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        params = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        filterset = FeedFilterSet(params, scope=params.get("scope"))
        # Like the page: invalid parameters are left out and the valid ones still apply.
        filterset.is_valid()
        try:
            self.event_filter = filterset.event_filter(live=True)
        except ValueError:
            await self.close(code=4400)
            return
        self.membership = Membership(self.channel_layer, self.channel_name)
        await self.membership.join()
        await self.accept()
        if after := _parse_time(params.get("live_after")):
            events = await self._backfill(after)
            if events:
                await self._send_rows(events, backfill=True)

    async def disconnect(self, code: int) -> None:
        if self.event_filter is not None:
            await self.membership.leave()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))

    async def events_stored(self, message: dict) -> None:
        matched = []
        for data in message.get("events", []):
            try:
                event = schema.Event.from_wire(data)
            except (KeyError, TypeError, ValueError):
                logger.warning("feed: skipped a malformed broadcast event")
                continue
            if self.event_filter.matches(event):
                matched.append(event)
        if matched:
            await self._send_rows(matched)

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
