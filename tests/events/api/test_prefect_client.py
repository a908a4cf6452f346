"""The real Prefect 3.9.1 client and CLI over eventsite's websockets, against `manage.py serve`.

Each client runs in its own process: Prefect's emit worker is a process-wide singleton and its
settings are read from the environment, as they are for a user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from events.models import ApiToken, Event
from tests.factories import domain_events, event_data

pytestmark = pytest.mark.live

PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture
def secret(user) -> str:
    return ApiToken.issue(user, name="prefect")[1]


@pytest.fixture
def prefect_env(server, secret, tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": f"{server.url}/api",
        "PREFECT_API_AUTH_STRING": f"eventsite:{secret}",
        "PREFECT_HOME": str(tmp_path),
        "PREFECT_LOGGING_LEVEL": "INFO",
    }


def run(script: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout
    )


def last_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def find(server, secret: str, **filter_) -> dict:
    response = httpx.post(
        f"{server.url}/api/events/filter",
        json={"filter": filter_, "limit": 200},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def post(server, secret: str, events: list[dict]) -> None:
    response = httpx.post(
        f"{server.url}/api/events", json=events, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 204, response.text


EMIT = """
import json
from datetime import timedelta
from prefect.events import emit_event
from prefect.events.worker import EventsWorker

first = emit_event(event="kiki.sent.event!", resource={"prefect.resource.id": "kiki.1",
                   "prefect.resource.name": "Kiki"}, payload={"name": "kiki"})
second = emit_event(
    event="kiki.followed.up",
    resource={"prefect.resource.id": "kiki.1"},
    related=[{"prefect.resource.id": "acme.customer.7", "prefect.resource.role": "customer",
              "color": "blue"}],
    payload={"n": 2, "nested": {"ok": True}},
    follows=first,
)
long_ago = emit_event(event="kiki.old", resource={"prefect.resource.id": "kiki.1"},
                      occurred=first.occurred - timedelta(minutes=10))
late = emit_event(event="kiki.late", resource={"prefect.resource.id": "kiki.1"}, follows=long_ago)
EventsWorker.drain_all()
print(json.dumps({"first": first.model_dump(mode="json"), "second": second.model_dump(mode="json"),
                  "late": str(late.id)}))
"""


def test_prefect_emit_event_with_follows_related_and_payload_is_stored(server, secret, prefect_env):
    result = run(EMIT, prefect_env)

    sent = last_json(result)
    first, second = sent["first"], sent["second"]
    found = find(server, secret, id={"id": [first["id"], second["id"], sent["late"]]})
    assert found["total"] == 3
    by_id = {e["id"]: e for e in found["events"]}
    stored = by_id[second["id"]]
    for key in ("event", "resource", "related", "payload", "follows"):
        assert stored[key] == second[key], key
    assert stored["follows"] == first["id"]
    assert stored["occurred"].rstrip("Z") == second["occurred"].replace("+00:00", "").rstrip("Z")
    assert stored["received"] >= stored["occurred"]
    assert by_id[first["id"]]["payload"] == {"name": "kiki"}
    # The client itself drops `follows` across more than 5 minutes (reference §1.5).
    assert by_id[sent["late"]]["follows"] is None


def test_prefect_emit_with_a_wrong_token_is_refused_with_the_reason(server, prefect_env):
    env = {**prefect_env, "PREFECT_API_AUTH_STRING": "eventsite:es_not-a-real-token"}

    result = run(EMIT, env)

    assert "Invalid token" in result.stderr
    assert domain_events().count() == 0


SUBSCRIBE = """
import asyncio, json, sys
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter

async def main():
    got = []
    async with get_events_subscriber(filter=EventFilter(event=EventNameFilter(prefix=["acme."]))) as sub:
        print("READY", flush=True)
        async for event in sub:
            got.append({"id": str(event.id), "event": event.event})
            if len(got) == int(sys.argv[1]):
                break
    print(json.dumps(got), flush=True)

asyncio.run(main())
"""


def test_get_events_subscriber_gets_backfill_then_a_live_event_posted_over_rest(
    server, secret, prefect_env
):
    before = event_data("acme.before")
    post(server, secret, [before, event_data("other.before")])
    process = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBE, "2"],
        env=prefect_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "READY"
        live = event_data("acme.live")
        post(server, secret, [event_data("other.live"), live])
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()

    assert process.returncode == 0, err[-3000:]
    got = json.loads(out.strip().splitlines()[-1])
    assert got == [
        {"id": before["id"], "event": "acme.before"},
        {"id": live["id"], "event": "acme.live"},
    ]


def test_prefect_event_emit_cli_stores_the_event(server, secret, prefect_env):
    result = subprocess.run(
        [
            PREFECT,
            "event",
            "emit",
            "acme.cli.emitted",
            "--resource-id",
            "acme.cli.1",
            "--related",
            '{"prefect.resource.id": "acme.customer.7", "prefect.resource.role": "customer"}',
            "--payload",
            '{"via": "cli"}',
        ],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    found = find(server, secret, event={"name": ["acme.cli.emitted"]})
    assert found["total"] == 1
    [event] = found["events"]
    assert event["resource"] == {"prefect.resource.id": "acme.cli.1"}
    assert event["related"][0]["prefect.resource.role"] == "customer"
    assert event["payload"] == {"via": "cli"}


def next_json_line(process: subprocess.Popen) -> dict:
    """The next event the CLI prints, past its banner and the audit trail of the test's token."""
    for line in process.stdout:
        if line.startswith("{") and not json.loads(line)["event"].startswith("prefect-cloud."):
            return json.loads(line)
    raise AssertionError(f"stream ended: {process.stderr.read()[-3000:]}")


def test_prefect_event_stream_cli_prints_backfilled_and_live_events(server, secret, prefect_env):
    before = event_data("acme.stream.before")
    post(server, secret, [before])
    process = subprocess.Popen(
        [PREFECT, "event", "stream", "--format", "json"],
        env=prefect_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = next_json_line(process)  # the backfill: it is connected now
        live = event_data("acme.stream.live")
        post(server, secret, [live])
        second = next_json_line(process)
    finally:
        process.terminate()
        process.wait(10)

    assert first["id"] == before["id"]
    assert second["id"] == live["id"]
    assert second["event"] == "acme.stream.live"


STREAM = """
import asyncio, json, sys, time
from prefect.events import Event
from prefect.events.clients import PrefectEventsClient

async def main():
    total = int(sys.argv[1])
    ids = []
    # Prefect's default (10 attempts, about 8 s) is shorter than a restart takes on a loaded CI
    # machine; a minute of attempts keeps the test about resending, not about start-up time.
    async with PrefectEventsClient(reconnection_attempts=60) as client:
        for i in range(total):
            event = Event(event="acme.stream", resource={"prefect.resource.id": f"acme.r.{i}"})
            await client.emit(event)
            ids.append(str(event.id))
            if i == 100:
                print("STREAMING", flush=True)
            await asyncio.sleep(float(sys.argv[2]))
    print(json.dumps(ids), flush=True)

asyncio.run(main())
"""


def stored_stream_ids(expected: int, timeout: float = 20) -> list[str]:
    """Ids stored for the stream, once `expected` are there (or the timeout ran out).

    A websocket sender gets no per-event acknowledgement: its last frames are written just
    after it hangs up, so the test waits for them instead of reading at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        ids = [
            str(i) for i in Event.objects.filter(event="acme.stream").values_list("id", flat=True)
        ]
        if len(ids) >= expected or time.monotonic() > deadline:
            return ids
        time.sleep(0.05)


def test_prefect_client_resends_across_a_server_restart_and_each_event_is_stored_once(
    server, secret, prefect_env
):
    process = subprocess.Popen(
        [sys.executable, "-c", STREAM, "600", "0.01"],
        env=prefect_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "STREAMING"
        server.restart()  # mid-stream: the client has unconfirmed events and keeps sending
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()

    assert process.returncode == 0, err[-3000:]
    sent = json.loads(out.strip().splitlines()[-1])
    assert len(sent) == 600
    rows = stored_stream_ids(600)
    assert len(rows) == 600
    assert set(rows) == set(sent)
    assert "Unable to connect" not in err


def test_a_full_speed_burst_across_a_server_restart_is_stored_exactly_once(
    server, secret, prefect_env
):
    total = 20_000
    process = subprocess.Popen(
        [sys.executable, "-c", STREAM, str(total), "0"],
        env=prefect_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "STREAMING"
        deadline = time.monotonic() + 60
        while Event.objects.filter(event="acme.stream").count() < 3_000:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Stopped while frames are arriving: what it received (and the client saw ponged) is
        # written before it exits, and the client resends what it had not seen confirmed.
        server.restart()
        out, err = process.communicate(timeout=180)
    finally:
        process.kill()

    assert process.returncode == 0, err[-3000:]
    sent = json.loads(out.strip().splitlines()[-1])
    stored = stored_stream_ids(total)
    assert len(sent) == total
    assert len(stored) == total
    assert set(stored) == set(sent)


def test_csrf_token_answers_that_csrf_is_disabled(server, secret):
    response = httpx.get(
        f"{server.url}/api/csrf-token?client=abc", headers={"Authorization": f"Bearer {secret}"}
    )

    assert response.status_code == 422
    assert "CSRF protection is disabled." in response.text
