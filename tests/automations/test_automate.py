"""Automate builds an automation that can fire again; templates, the live sentence, one more slot."""

from __future__ import annotations

import json

import pytest

from automations.engine import Engine
from automations.models import Automation, Firing
from automations.triggers import parse_trigger
from automations.triggers.automate import scopes, starters
from automations.triggers.describe import sentence
from tests.automations.conftest import store
from tests.automations.helpers import ev, rel
from tests.automations.test_pages import form_data
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db


def _run_event(run: str, flow: str = "prefect.flow.f1", deployment: str | None = None) -> dict:
    rels = [
        related("prefect.tag.x", "tag"),
        related(flow, "flow", **{"prefect.resource.name": "etl"}),
    ]
    if deployment:
        rels.append(related(deployment, "deployment", **{"prefect.resource.name": "nightly"}))
    return event_data("prefect.flow-run.Failed", run, related=rels)


def test_a_run_event_offers_its_flow_and_deployment_before_the_run_itself():
    event = ev(
        "prefect.flow-run.Failed",
        "prefect.flow-run.abc",
        related=[
            rel("prefect.deployment.d1", "deployment", **{"prefect.resource.name": "nightly"}),
            rel("prefect.flow.f1", "flow", **{"prefect.resource.name": "etl"}),
        ],
    )
    offered = scopes(event)
    assert [o.key for o in offered] == ["flow", "deployment", "this"]
    assert offered[0].label == "any run of flow “etl”"
    assert offered[1].label == "any run of deployment “nightly”"
    assert [o.fires_again for o in offered] == [True, True, False]
    assert offered[1].trigger["match"] == {"prefect.resource.id": "prefect.flow-run.*"}
    for o in offered:
        parse_trigger(o.trigger)  # each is a valid trigger


def test_an_event_on_a_lasting_resource_defaults_to_that_resource():
    offered = scopes(ev("acme.order.created", "acme.order.31"))
    assert [o.key for o in offered] == ["this"] and offered[0].fires_again


def test_every_starting_template_is_a_valid_trigger_with_a_sentence():
    for label, trigger in starters().values():
        assert sentence(parse_trigger(trigger)).startswith("Fires when"), label


def test_automate_from_a_failed_run_saved_as_offered_fires_for_the_next_failed_run_of_that_flow(
    clock, logged_in_client
):
    first = _run_event("prefect.flow-run.r1")
    store(first)
    clock.shift(60)
    page = logged_in_client.get(f"/automations/new/?event={first['id']}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "any run of flow “etl”" in html and "(cannot fire again)" in html
    initial = page.context["form"].initial
    data = form_data(
        name=initial["name"],
        match_resource=initial["match_resource"],
        related_role=initial["related_role"],
        related_resource=initial["related_resource"],
        expect=initial["expect"],
        for_each=initial["for_each"],
    )
    saved = logged_in_client.post("/automations/new/", data)
    assert saved.status_code == 302
    automation = Automation.objects.get()
    assert "etl" in automation.name
    engine = Engine()
    engine.load()
    clock.shift(1)
    store(_run_event("prefect.flow-run.r2", flow="prefect.flow.other"))  # another flow
    store(nxt := _run_event("prefect.flow-run.r3"))  # the next failed run of this flow
    engine.step()
    (firing,) = Firing.objects.filter(automation=automation)
    assert str(firing.triggering_event_id) == nxt["id"]
    assert firing.triggering_labels == {"prefect.resource.id": "prefect.flow-run.r3"}


def test_new_offers_starting_templates_that_prefill_the_form(logged_in_client):
    page = logged_in_client.get("/automations/new/")
    assert 'href="?template=heartbeat"' in page.content.decode()
    filled = logged_in_client.get("/automations/new/?template=heartbeat")
    initial = filled.context["form"].initial
    assert initial["posture"] == "Proactive"
    assert initial["after"] == initial["expect"] == "prefect.worker.heartbeat"
    assert "Fires when no prefect.worker.heartbeat" in filled.content.decode()
    sequence = logged_in_client.get("/automations/new/?template=sequence")
    assert json.loads(sequence.context["form"].initial["trigger_json"])["type"] == "sequence"


def test_the_sentence_follows_the_fields_as_they_are_edited(logged_in_client):
    response = logged_in_client.post(
        "/automations/sentence", form_data(threshold="3", within="600", for_each="acme.region")
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="trigger-sentence"' in text
    assert "acme.order.created happens on acme.order.* 3 times within 10 minutes" in text
    assert "for each acme.region" in text
    broken = logged_in_client.post(
        "/automations/sentence", form_data(trigger_mode="json", trigger_json="{")
    )
    assert "Not a complete trigger yet" in broken.content.decode()


def test_one_more_action_slot_comes_without_saving(logged_in_client):
    response = logged_in_client.get("/automations/action-slot?actions-TOTAL_FORMS=2")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="actions-2-type"' in html
    assert 'name="actions-TOTAL_FORMS" value="3"' in html and "hx-swap-oob" in html
    # the slot's fields are read by the formset on save
    data = form_data(**{"actions-TOTAL_FORMS": "2", "actions-1-type": "do-nothing"})
    assert logged_in_client.post("/automations/new/", data).status_code == 302
    assert len(Automation.objects.get().actions) == 2
