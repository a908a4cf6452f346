"""The real Prefect 3.9.1 client reading from eventsite over REST."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from events.models import ApiToken
from tests.factories import event_data, related

pytestmark = pytest.mark.live

READ_EVENTS = """
import asyncio, json
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter

async def main():
    async with get_client() as client:
        page = await client.read_events(filter=EventFilter(event=EventNameFilter(prefix=["acme."])))
        out = {"total": page.total, "ids": [str(e.id) for e in page.events],
               "related": [[dict(r) for r in e.related] for e in page.events],
               "next_page": str(page.next_page) if page.next_page else None}
        if page.next_page:
            nxt = await client.read_events_page(page.next_page)
            out["next_ids"] = [str(e.id) for e in nxt.events]
        print(json.dumps(out))

asyncio.run(main())
"""


def run_prefect(script: str, url: str, env: dict[str, str], tmp_path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PREFECT_API_URL": f"{url}/api", "PREFECT_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_prefect_read_events_returns_what_was_posted_with_its_default_limit(server, user, tmp_path):
    _, secret = ApiToken.issue(user, name="prefect")
    events = [
        event_data(f"acme.order.{i}", related=[related("acme.customer.7", "customer")])
        for i in range(120)
    ]
    events.append(event_data("other.thing"))
    assert (
        httpx.post(
            f"{server.url}/api/events", json=events, headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 204
    )

    out = run_prefect(READ_EVENTS, server.url, {"PREFECT_API_KEY": secret}, tmp_path)

    assert out["total"] == 120
    assert len(out["ids"]) == 100  # read_events() asks for 100; Prefect's own server refuses that
    assert out["related"][0] == [
        {"prefect.resource.id": "acme.customer.7", "prefect.resource.role": "customer"}
    ]
    assert out["next_page"].startswith(f"{server.url}/api/events/filter/next?page-token=")
    assert len(out["next_ids"]) == 20
    assert set(out["ids"] + out["next_ids"]) == {e["id"] for e in events[:120]}


def test_prefect_client_with_a_basic_auth_string_reads_events(server, user, tmp_path):
    _, secret = ApiToken.issue(user, name="prefect")
    event = event_data("acme.basic")
    httpx.post(
        f"{server.url}/api/events", json=[event], headers={"Authorization": f"Bearer {secret}"}
    )

    out = run_prefect(
        READ_EVENTS, server.url, {"PREFECT_API_AUTH_STRING": f"eventsite:{secret}"}, tmp_path
    )

    assert out["ids"] == [event["id"]]


def test_prefect_client_with_a_wrong_token_is_refused(server, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", READ_EVENTS],
        env={
            **os.environ,
            "PREFECT_API_URL": f"{server.url}/api",
            "PREFECT_HOME": str(tmp_path),
            "PREFECT_API_KEY": "nope",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "401" in result.stderr
