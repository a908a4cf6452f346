"""In a real browser: a failed delivery resent from the firing page and from "Resend failed
runs", against a receiver that was down and came back (a live server of its own, allowed to call
loopback receivers)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from automations.models import ActionRun
from events.models import Event as EventRow
from tests.automations.actions.receivers import Receiver
from tests.automations.conftest import event, make_automation, settle, store
from tests.browser.conftest import signed_in_page

pytestmark = [pytest.mark.browser, pytest.mark.live]

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


@pytest.fixture
def server(private_server, transactional_db):
    yield private_server
    settle()


@pytest.fixture
def page(browser, server, user):
    with signed_in_page(
        browser, server, user, timeout_ms=60_000
    ) as page:  # a loaded machine: the live engine may take a while
        yield page


@pytest.fixture
def receiver():
    state = {"status": 503}

    def answer(request):
        return (
            state["status"],
            {"content-type": "text/plain"},
            b"down" if state["status"] >= 500 else b"ok",
        )

    r = Receiver(answer)
    r.state = state
    yield r
    r.close()


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("the engine did not get there in time")


def statuses() -> list[str]:
    return list(ActionRun.objects.order_by("created").values_list("status", flat=True))


def test_failed_runs_are_resent_from_the_firing_page_and_in_bulk(
    server, page, receiver, screenshots
):
    """The pages requeue failed runs and say how many. Which live engine then sends them is not
    this test's concern (in the full suite another server's engine, refused loopback, may take
    them): the delivery after a resend is tested with a real receiver in test_delivery.py."""
    action = {"type": "call-webhook", "url": receiver.url, "retry": {"attempts": 1}}
    automation = make_automation(TRIGGER, [action], name="Orders to the shop")
    time.sleep(1.1)  # after the live engine's first instant (its new cursor's horizon)
    store(event("acme.order.created", "acme.order.1"), event("acme.order.created", "acme.order.2"))
    wait_for(lambda: statuses() == ["failed", "failed"])

    first = ActionRun.objects.order_by("created").first()
    page.goto(f"{server.url}/automations/firings/{first.firing_id}/")
    expect(page.locator(".run.status-failed")).to_be_visible()
    page.screenshot(path=str(screenshots / "resend-firing-failed.png"), full_page=True)
    clicked = timezone.now()
    page.click("button.resend")
    expect(page.locator(".toast")).to_contain_text("Resent 1 failed run")
    first.refresh_from_db()
    assert first.updated >= clicked  # requeued (and perhaps already sent again)
    resent = EventRow.objects.filter(event="prefect-cloud.automation.resent")
    assert [e.payload["runs"] for e in resent] == [[str(first.id)]]

    page.goto(f"{server.url}/automations/{automation.id}/")
    page.click("text=Resend failed runs…")
    expect(page.locator(".verdict")).to_contain_text("failed since")
    page.screenshot(path=str(screenshots / "resend-failed-since.png"), full_page=True)
    page.click("button:has-text('Resend')")
    page.wait_for_url(f"{server.url}/automations/{automation.id}/")
    expect(page.locator(".toast")).to_contain_text("since")
