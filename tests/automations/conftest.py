from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine

from automations.models import Automation
from events.ingest import ingest
from tests.factories import event_data

NOW = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    """A controlled clock: `clock.shift(seconds)` moves it; `timezone.now()` follows it."""
    with time_machine.travel(NOW, tick=False) as traveller:

        class Clock:
            def now(self) -> datetime:
                from django.utils import timezone

                return timezone.now()

            def shift(self, seconds: float) -> None:
                traveller.shift(timedelta(seconds=seconds))

        yield Clock()


def store(*items: dict) -> None:
    result = ingest(list(items), source="test")
    assert result.ok, result.rejected


def event(name: str, resource_id: str = "acme.thing.1", *, ago: float = 0, **kwargs) -> dict:
    from django.utils import timezone

    return event_data(name, resource_id, occurred=timezone.now() - timedelta(seconds=ago), **kwargs)


def make_automation(trigger: dict, actions: list | None = None, **fields) -> Automation:
    from automations.triggers import parse_trigger

    parsed = parse_trigger(trigger).to_json()
    return Automation.objects.create(
        name=fields.pop("name", "test automation"),
        trigger=parsed,
        actions=actions if actions is not None else [{"type": "do-nothing"}],
        **fields,
    )


class Sink:
    """A real HTTP receiver on a loopback port, recording every request."""

    def __init__(self, status: int = 200, body: bytes = b"ok", delay: float = 0.0):
        self.status, self.body, self.delay = status, body, delay
        self.requests: list[dict] = []
        self.received = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                import time

                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                sink.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": data.decode(),
                        "at": time.monotonic(),
                    }
                )
                sink.received.set()
                if sink.delay:
                    time.sleep(sink.delay)
                try:
                    self.send_response(sink.status)
                    self.send_header("content-type", "text/plain")
                    self.send_header("set-cookie", "session=abc")
                    self.end_headers()
                    self.wfile.write(sink.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def allow_private(settings):
    """Let actions call loopback receivers (refused by default: EVENTSITE_ACTIONS_ALLOW_PRIVATE)."""
    settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE = "1"


@pytest.fixture
def sink(allow_private):
    s = Sink()
    yield s
    s.close()


def new_id() -> str:
    return str(uuid.uuid4())


def settle(timeout: float = 15.0) -> None:
    """Wait until a live server's engine has finished reacting (nothing new for a moment).

    A test database is flushed after each live test; an engine still writing firings then can
    deadlock the flush on PostgreSQL.
    """
    import time

    from django.db.models import F

    from automations.models import ActionRun
    from events.models import Event

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        busy = ActionRun.objects.filter(
            status__in=[ActionRun.Status.PENDING, ActionRun.Status.RUNNING],
            attempts=F("resent_after"),  # not tried yet (since a resend)
        ).exists()
        now = (Event.objects.count(), busy)
        if now == last and not busy:
            return
        last = now
        time.sleep(1.2)  # longer than the engine's lazy cursor write interval


@pytest.fixture
def server(server):
    yield server
    settle()
