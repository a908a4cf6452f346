"""The real Prefect 3.9.1 client and CLI read every automation back, whatever actions it holds.

Prefect's client knows `call-webhook` and `send-notification` only with a `block_document_id`;
eventsite stores its URL and email actions (and the presets) under type names of its own, which
the client reads as `UnknownAction` and sends back unchanged, secrets still redacted: the
server keeps the stored values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from automations.actions import parse_action
from automations.models import Automation
from events.models import ApiToken
from eventsite.field_secrets import REDACTED

pytestmark = pytest.mark.live

PREFECT = str(Path(sys.executable).with_name("prefect"))
TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


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
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def every_kind(other_id: str) -> list[dict]:
    return [
        {"type": "do-nothing"},
        {
            "type": "call-webhook",
            "url": "https://hooks.example.com/in",
            "headers": {"Authorization": "Bearer prefect-roundtrip-secret"},
            "payload": "{{ event.id }}",
        },
        {"type": "send-notification", "to": ["ops@example.com"], "body": "{{ event.event }}"},
        {"type": "notify-slack", "webhook_url": "https://hooks.slack.com/services/T/B/slacksecret"},
        {"type": "notify-teams", "webhook_url": "https://example.webhook.office.com/teamssecret"},
        {"type": "notify-pagerduty", "routing_key": "pdsecret" * 4},
        {"type": "notify-discord", "webhook_url": "https://discord.com/api/webhooks/1/dsecret"},
        {
            "type": "emit-event",
            "event": {"event": "acme.alerted", "resource": {"prefect.resource.id": "acme.alerts"}},
        },
        {"type": "pause-automation", "source": "selected", "automation_id": other_id},
        {"type": "resume-automation", "source": "inferred"},
    ]


def create(server, secret: str, body: dict) -> dict:
    response = httpx.post(
        f"{server.url}/api/automations/", json=body, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 201, response.text
    return response.json()


READ_AND_ROUNDTRIP = """
import asyncio, json
from prefect.client.orchestration import get_client
from prefect.events.actions import UnknownAction
from prefect.events.schemas.automations import AutomationCore

async def main():
    async with get_client() as client:
        automations = await client.read_automations()
        found = {a.name: [type(x).__name__ + ":" + x.type for x in a.actions + a.actions_on_trigger + a.actions_on_resolve] for a in automations}
        target = next(a for a in automations if a.name == "every kind")
        core = AutomationCore.model_validate(target.model_dump(exclude={"id", "created", "updated"}))
        core.description = "round-tripped by the Prefect client"
        await client.update_automation(target.id, core)
        again = await client.read_automation(target.id)
    print(json.dumps({"found": found, "description": again.description}))

asyncio.run(main())
"""


def test_the_prefect_client_reads_and_round_trips_automations_with_every_action_kind(
    server, secret, prefect_env
):
    other = create(server, secret, {"name": "other", "trigger": TRIGGER, "actions": []})
    kinds = every_kind(other["id"])
    create(
        server,
        secret,
        {
            "name": "every kind",
            "trigger": TRIGGER,
            "actions": kinds,
            "actions_on_trigger": kinds[:3],
            "actions_on_resolve": [kinds[5]],
        },
    )

    result = subprocess.run(
        [sys.executable, "-c", READ_AND_ROUNDTRIP],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["description"] == "round-tripped by the Prefect client"
    read = out["found"]["every kind"]
    assert read[:10] == [
        "DoNothing:do-nothing",
        "UnknownAction:call-webhook-url",
        "UnknownAction:send-email",
        "UnknownAction:notify-slack",
        "UnknownAction:notify-teams",
        "UnknownAction:notify-pagerduty",
        "UnknownAction:notify-discord",
        "UnknownAction:emit-event",
        "PauseAutomation:pause-automation",
        "ResumeAutomation:resume-automation",
    ]
    # The client sent the redacted secrets back: the stored values are kept.
    stored = Automation.objects.get(name="every kind")
    webhook = parse_action(stored.actions[1])
    assert webhook.headers == {"Authorization": "Bearer prefect-roundtrip-secret"}
    assert parse_action(stored.actions[3]).webhook_url.endswith("/slacksecret")
    assert parse_action(stored.actions_on_resolve[0]).routing_key == "pdsecret" * 4
    assert stored.to_api()["actions"][1]["headers"] == {"Authorization": REDACTED}


def test_prefect_automation_ls_lists_automations_with_every_action_kind(
    server, secret, prefect_env
):
    other = create(server, secret, {"name": "other", "trigger": TRIGGER, "actions": []})
    name = f"every kind {uuid.uuid4().hex[:6]}"
    create(server, secret, {"name": name, "trigger": TRIGGER, "actions": every_kind(other["id"])})

    result = subprocess.run(
        [PREFECT, "automation", "ls"],
        env={**prefect_env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert name in result.stdout
    assert "Notify slack" in result.stdout
