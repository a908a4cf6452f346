"""The SDK (`events/client.py`) against a real `manage.py serve`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from events.client import Client, build_event
from events.models import ApiToken, Event
from tests.conftest import ROOT
from tests.factories import domain_events

pytestmark = pytest.mark.live


@pytest.fixture
def secret(user) -> str:
    return ApiToken.issue(user, name="sdk")[1]


def test_sdk_sends_events_in_the_background_and_they_are_stored(server, secret):
    client = Client(server.url, secret)

    first = client.emit(build_event("kiki.sent.event!", {"prefect.resource.id": "kiki.1"}))
    second = client.emit(
        build_event(
            "kiki.followed.up",
            {"prefect.resource.id": "kiki.1"},
            related=[{"prefect.resource.id": "acme.customer.7", "prefect.resource.role": "c"}],
            payload={"name": "kiki", "when": datetime(2026, 1, 1, tzinfo=UTC)},
            follows=first,
        )
    )

    assert client.flush(30)
    stored = Event.objects.get(id=second["id"])
    assert stored.follows is not None
    assert str(stored.follows) == first["id"]
    assert stored.related == second["related"]
    assert stored.payload == {"name": "kiki", "when": "2026-01-01T00:00:00+00:00"}
    assert client.sent == 2


def test_sdk_drops_follows_more_than_five_minutes_apart():
    earlier = build_event(
        "a", {"prefect.resource.id": "r"}, occurred=datetime.now(UTC) - timedelta(minutes=6)
    )

    later = build_event("b", {"prefect.resource.id": "r"}, follows=earlier)

    assert later["follows"] is None


def test_sdk_refuses_a_resource_without_an_id_at_once():
    with pytest.raises(ValueError, match="prefect.resource.id"):
        build_event("a", {"name": "no id"})


def test_sdk_logs_the_servers_reason_for_an_invalid_event_and_sends_the_rest(
    server, secret, caplog
):
    client = Client(server.url, secret)
    good = [build_event("acme.ok", {"prefect.resource.id": f"r.{i}"}) for i in range(2)]
    bad = build_event("x" * 2000, {"prefect.resource.id": "r.bad"})

    with caplog.at_level(logging.ERROR, logger="eventsite.client"):
        for event in (good[0], bad, good[1]):
            client.emit(event)
        assert client.flush(30)

    assert set(map(str, domain_events().values_list("id", flat=True))) == {e["id"] for e in good}
    assert client.rejected == 1
    assert f"event {bad['id']} refused by the server (422)" in caplog.text
    assert "at most 1024" in caplog.text


def test_sdk_loses_nothing_while_the_server_restarts_mid_stream(server, secret):
    client = Client(server.url, secret)
    sent: list[str] = []
    stop = threading.Event()

    def stream():
        i = 0
        while not stop.is_set():
            sent.append(
                client.emit(build_event("acme.tick", {"prefect.resource.id": f"t.{i}"}))["id"]
            )
            i += 1
            time.sleep(0.005)

    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(0.5)
    server.restart()
    time.sleep(0.5)
    stop.set()
    thread.join()

    assert client.flush(60)
    stored = list(Event.objects.filter(event="acme.tick").values_list("id", flat=True))
    assert len(stored) == len(sent) > 100
    assert {str(i) for i in stored} == set(sent)


def test_sdk_queue_bound_drops_new_events_with_a_warning(caplog):
    client = Client("http://127.0.0.1:9", "es_token", max_queue=3)  # nothing listens on port 9

    with caplog.at_level(logging.WARNING, logger="eventsite.client"):
        for i in range(10):
            client.emit(build_event("a", {"prefect.resource.id": f"r.{i}"}))

    # Up to 3 wait in the queue (and one batch may be in the sender's hands); the rest dropped.
    assert client.dropped > 0
    assert client.pending + client.dropped == 10
    assert "queue is full" in caplog.text
    assert not client.flush(0.1)
    client.close()
    assert client.pending == 0


SCRIPT = """
import sys
from events.client import emit_event
emitted = emit_event("kiki.sent.event!", {"prefect.resource.id": "kiki.exit"}, payload={"name": "kiki"})
assert "django" not in sys.modules, "the SDK must not import Django"
print(emitted["id"], flush=True)
"""


def test_sdk_flushes_at_exit_with_prefect_settings_and_without_django(server, secret):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVENTSITE_", "DJANGO_", "PREFECT_"))
    }
    env |= {
        "PREFECT_API_URL": f"{server.url}/api",
        "PREFECT_API_AUTH_STRING": f"eventsite:{secret}",
        "PYTHONPATH": str(ROOT),
    }

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    event_id = result.stdout.strip()
    assert Event.objects.filter(id=event_id, event="kiki.sent.event!").exists()
