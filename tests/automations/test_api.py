"""The automations REST API: with DRF's client, and with the real Prefect client on a live server."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from automations.models import Automation, Firing
from events.models import Event as EventRow

pytestmark = pytest.mark.django_db

TRIGGER = {
    "type": "event",
    "match": {"prefect.resource.id": "my.res.*"},
    "match_related": {},
    "after": [],
    "expect": ["my.trigger.test"],
    "for_each": [],
    "posture": "Reactive",
    "threshold": 1,
    "within": 0.0,
}


def body(**overrides) -> dict:
    return {
        "name": "wire-test",
        "description": "",
        "enabled": True,
        "tags": [],
        "trigger": {**TRIGGER, "id": str(uuid.uuid4())},
        "actions": [{"type": "do-nothing"}],
        "actions_on_trigger": [],
        "actions_on_resolve": [],
        "owner_resource": None,
        **overrides,
    }


def create(api_client, **overrides):
    return api_client.post("/api/automations/", body(**overrides), format="json")


def test_create_answers_201_with_new_trigger_ids_and_emits_created(api_client):
    sent = body()
    response = api_client.post("/api/automations/", sent, format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["trigger"]["id"] != sent["trigger"]["id"]
    assert set(data) == {
        "name",
        "description",
        "enabled",
        "tags",
        "trigger",
        "actions",
        "actions_on_trigger",
        "actions_on_resolve",
        "id",
        "created",
        "updated",
    }
    automation = Automation.objects.get(pk=data["id"])
    assert automation.trigger["expect"] == ["my.trigger.test"]
    (created,) = EventRow.objects.filter(event="prefect.automation.created")
    assert created.resource == {
        "prefect.resource.id": f"prefect.automation.{automation.id}",
        "prefect.resource.name": "wire-test",
    }
    assert created.related == []
    assert created.payload["id"] == data["id"]


def test_create_without_a_token_is_401(client):
    response = client.post("/api/automations/", body(), content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"trigger": {**TRIGGER, "posture": "Proactive", "within": 5}}, "trigger.within"),
        ({"trigger": {**TRIGGER, "surprise": 1}}, "trigger.surprise"),
        ({"trigger": {"type": "metric", "metric": {}}}, "trigger"),
        (
            {"trigger": {"type": "compound", "require": 3, "triggers": [TRIGGER]}},
            "trigger.require",
        ),
        (
            {"actions": [{"type": "call-webhook", "url": "http://x.test", "payload": "{% for %}"}]},
            "actions.0.payload",
        ),
        (
            {"actions": [{"type": "call-webhook", "block_document_id": str(uuid.uuid4())}]},
            "actions.0.block_document_id",
        ),
        ({"name": ""}, "name"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_create_refuses_invalid_definitions_with_field_errors(api_client, overrides, field):
    response = create(api_client, **overrides)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    assert Automation.objects.count() == 0


def test_an_automation_reacting_to_its_own_events_is_refused_unless_allowed(api_client):
    catch_all = {"type": "event", "posture": "Reactive", "expect": ["prefect.automation.*"]}
    response = create(api_client, trigger=catch_all)
    assert response.status_code == 422
    assert "its own" in response.json()["errors"][0]["message"]
    narrowed = {**catch_all, "match": {"prefect.resource.id": "!prefect.automation.*"}}
    assert create(api_client, trigger=narrowed).status_code == 201
    assert create(api_client, trigger=catch_all, allow_self_trigger=True).status_code == 201
    loop = {
        "type": "emit-event",
        "event": {"event": "my.trigger.test", "resource": {"prefect.resource.id": "my.res.1"}},
    }
    response = create(api_client, actions=[loop])
    assert response.status_code == 422


def test_an_automation_cannot_pause_itself(api_client):
    automation_id = create(api_client).json()["id"]
    response = api_client.put(
        f"/api/automations/{automation_id}",
        body(
            actions=[
                {"type": "pause-automation", "source": "selected", "automation_id": automation_id}
            ]
        ),
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "actions.0.automation_id"


def test_read_put_patch_delete(api_client):
    automation_id = create(api_client).json()["id"]
    response = api_client.get(f"/api/automations/{automation_id}")
    assert response.status_code == 200 and response.json()["name"] == "wire-test"
    old_trigger_id = response.json()["trigger"]["id"]

    response = api_client.put(
        f"/api/automations/{automation_id}", body(name="renamed", tags=["a"]), format="json"
    )
    assert response.status_code == 204
    automation = Automation.objects.get(pk=automation_id)
    assert automation.name == "renamed" and automation.tags == ["a"]
    assert automation.trigger["id"] != old_trigger_id

    response = api_client.patch(
        f"/api/automations/{automation_id}", {"enabled": False}, format="json"
    )
    assert response.status_code == 204
    assert Automation.objects.get(pk=automation_id).enabled is False

    assert api_client.delete(f"/api/automations/{automation_id}").status_code == 204
    assert not Automation.objects.filter(pk=automation_id).exists()
    assert api_client.get(f"/api/automations/{automation_id}").status_code == 404
    assert api_client.delete(f"/api/automations/{automation_id}").status_code == 404
    names = list(
        EventRow.objects.filter(event__startswith="prefect.automation.").values_list(
            "event", flat=True
        )
    )
    assert sorted(names) == [
        "prefect.automation.created",
        "prefect.automation.deleted",
        "prefect.automation.updated",
        "prefect.automation.updated",
    ]


def test_put_owner_resource_is_refused_and_missing_ids_are_404(api_client):
    automation_id = create(api_client).json()["id"]
    response = api_client.put(
        f"/api/automations/{automation_id}",
        body(owner_resource="prefect.deployment.x"),
        format="json",
    )
    assert response.status_code == 422
    missing = uuid.uuid4()
    assert api_client.put(f"/api/automations/{missing}", body(), format="json").status_code == 404
    assert (
        api_client.patch(
            f"/api/automations/{missing}", {"enabled": True}, format="json"
        ).status_code
        == 404
    )


def test_filter_sorts_pages_and_filters_by_name_and_tags(api_client):
    for name, tags in [("b", ["x"]), ("a", ["x", "y"]), ("c", [])]:
        create(api_client, name=name, tags=tags)
    names = lambda r: [a["name"] for a in r.json()]  # noqa: E731
    assert names(api_client.post("/api/automations/filter", {}, format="json")) == ["a", "b", "c"]
    r = api_client.post(
        "/api/automations/filter", {"sort": "NAME_DESC", "limit": 2, "offset": 0}, format="json"
    )
    assert names(r) == ["c", "b"]
    r = api_client.post(
        "/api/automations/filter", {"automations": {"tags": {"all_": ["x", "y"]}}}, format="json"
    )
    assert names(r) == ["a"]
    r = api_client.post(
        "/api/automations/filter", {"automations": {"name": {"any_": ["b", "c"]}}}, format="json"
    )
    assert names(r) == ["b", "c"]
    r = api_client.post(
        "/api/automations/filter", {"automations": {"tags": {"is_null_": True}}}, format="json"
    )
    assert names(r) == ["c"]
    assert (
        api_client.post("/api/automations/filter", {"limit": 500}, format="json").status_code == 422
    )
    assert (
        api_client.post("/api/automations/filter", {"bogus": 1}, format="json").status_code == 422
    )
    r = api_client.post(
        "/api/automations/count", {"automations": {"tags": {"any_": ["x"]}}}, format="json"
    )
    assert r.status_code == 200 and r.json() == 2
    assert api_client.post("/api/automations/count", format="json").json() == 3


def test_related_to_and_owned_by(api_client):
    owned = create(api_client, name="owned", owner_resource="prefect.deployment.d1").json()["id"]
    create(api_client, name="other")
    r = api_client.get("/api/automations/related-to/prefect.deployment.d1")
    assert r.status_code == 200 and [a["id"] for a in r.json()] == [owned]
    assert api_client.delete("/api/automations/owned-by/prefect.deployment.d1").status_code == 202
    assert list(Automation.objects.values_list("name", flat=True)) == ["other"]


def test_explain_api_reports_clauses_and_verdict(api_client):
    from events.ingest import ingest
    from tests.factories import event_data

    automation_id = create(api_client).json()["id"]
    miss = event_data("my.trigger.test", "other.res.1")
    ingest([miss], source="test")
    r = api_client.get(f"/api/automations/{automation_id}/explain?event={miss['id']}")
    assert r.status_code == 200
    data = r.json()
    assert data["matched"] is False and data["fired"] is False
    clause = next(c for c in data["clauses"] if c["clause"] == "match prefect.resource.id")
    assert clause == {
        "clause": "match prefect.resource.id",
        "passed": False,
        "expected": "'my.res.*'",
        "actual": "'other.res.1'",
        "note": "",
    }
    assert "does not match" in data["verdict"]
    assert api_client.get(f"/api/automations/{automation_id}/explain?event=nope").status_code == 422
    assert (
        api_client.get(f"/api/automations/{automation_id}/explain?event={uuid.uuid4()}").status_code
        == 404
    )


# --- the real Prefect client ---------------------------------------------------------------------


@pytest.fixture
def prefect_settings(server, token):
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: f"{server.url}/api", PREFECT_API_KEY: token}):
        yield


@pytest.mark.live
def test_prefect_client_creates_reads_disables_updates_and_deletes(prefect_settings):
    from prefect.automations import Automation as PrefectAutomation
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import EventTrigger, Posture

    created = PrefectAutomation(
        name="from-prefect",
        trigger=EventTrigger(
            match={"prefect.resource.id": "my.res.*"},
            expect={"my.trigger.test"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[DoNothing()],
    ).create()
    assert created.id is not None
    read = PrefectAutomation.read(id=created.id)
    assert read.name == "from-prefect" and read.enabled is True
    assert PrefectAutomation.read(name="from-prefect").id == created.id
    read.disable()
    assert PrefectAutomation.read(id=created.id).enabled is False
    read.enable()
    read.description = "now described"
    read.update()
    again = PrefectAutomation.read(id=created.id)
    assert again.description == "now described" and again.enabled is True
    again.delete()
    assert not Automation.objects.filter(pk=created.id).exists()


@pytest.mark.live
def test_live_server_answers_422_for_a_proactive_within_of_five_seconds_and_metric(server, token):
    # Prefect's client refuses these itself; a raw request must be refused by the server too.
    headers = {"Authorization": f"Bearer {token}"}
    for trigger in (
        {**TRIGGER, "posture": "Proactive", "within": 5},
        {"type": "metric", "metric": {"name": "lateness"}},
    ):
        r = httpx.post(
            f"{server.url}/api/automations/", json=body(trigger=trigger), headers=headers
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"].startswith("trigger")


@pytest.mark.live
def test_scenario_nine_reactive_for_each_fires_once_through_the_live_engine(
    server, token, prefect_settings
):
    from prefect.automations import Automation as PrefectAutomation
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import EventTrigger, Posture

    created = PrefectAutomation(
        name="scenario-9",
        trigger=EventTrigger(
            expect={"s9.event"},
            posture=Posture.Reactive,
            threshold=2,
            within=30,
            for_each={"prefect.resource.id"},
        ),
        actions=[DoNothing()],
    ).create()
    headers = {"Authorization": f"Bearer {token}"}
    from tests.factories import event_data

    for rid in ["r1", "r1", "r1", "r2"]:
        r = httpx.post(
            f"{server.url}/api/events", json=[event_data("s9.event", rid)], headers=headers
        )
        assert r.status_code == 204
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if EventRow.objects.filter(event="prefect.automation.action.executed").exists():
            break
        time.sleep(0.1)
    (firing,) = Firing.objects.filter(automation_id=created.id)
    assert firing.triggering_labels == {"prefect.resource.id": "r1"}
    (triggered,) = EventRow.objects.filter(event="prefect.automation.triggered")
    assert triggered.related[0]["prefect.resource.role"] == "triggering-event"
    action_triggered = EventRow.objects.get(event="prefect.automation.action.triggered")
    executed = EventRow.objects.get(event="prefect.automation.action.executed")
    assert executed.follows == action_triggered.id
    assert {
        "prefect.resource.id": f"prefect.event.{triggered.id}",
        "prefect.resource.role": "automation-triggered-event",
    } in executed.related
