"""In a real browser: Automate from an event → prefilled form → save → a matching event fires it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.browser.conftest import signed_in_page
from tests.factories import event_data

pytestmark = [pytest.mark.browser, pytest.mark.live]

SCREENSHOTS = Path(settings.DATA_DIR) / "screenshots"


@pytest.fixture
def server(server):
    from tests.automations.conftest import settle

    yield server
    settle()


@pytest.fixture
def browser_page(browser, server, user):
    with signed_in_page(browser, server, user) as page:
        yield page


def _post_event(server, token, data) -> None:
    response = httpx.post(
        f"{server.url}/api/events", json=[data], headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 204, response.text


def test_automate_from_an_event_then_a_matching_event_fires_it(server, token, browser_page):
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen = event_data(
        "acme.order.created", "acme.order.31", labels={"prefect.resource.name": "Order 31"}
    )
    _post_event(server, token, seen)

    # The event detail page (and its Automate menu) belongs to the feed; it links here.
    page.goto(f"{server.url}/automations/new/?event={seen['id']}")
    assert page.locator("#id_match_resource").input_value() == "acme.order.31"
    assert page.locator("#id_expect").input_value() == "acme.order.created"
    assert page.locator("#id_posture").input_value() == "Reactive"
    assert "Order 31" in page.locator("#id_name").input_value()
    assert page.locator("#id_trigger_json").is_hidden()  # the friendly editor is shown

    page.click("#preview-button")
    page.wait_for_selector(".preview-count")
    assert page.locator(".preview-count").first.inner_text() == "1"

    page.select_option("#id_actions-0-type", "do-nothing")
    page.screenshot(path=str(SCREENSHOTS / "automation-form.png"), full_page=True)
    page.click("#save")
    page.wait_for_url(f"{server.url}/automations/*/")
    assert page.locator("h1").inner_text().startswith("When acme.order.created")
    assert "It has not fired yet" in page.content()

    _post_event(server, token, event_data("acme.order.created", "acme.order.31"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        page.reload()
        if page.locator("tr.firing").count():
            break
        time.sleep(0.3)
    assert page.locator("tr.firing").count() == 1
    row = page.locator("tr.firing").first
    assert "acme.order.created" in row.inner_text()
    page.wait_for_function("() => document.querySelector('tr.firing') !== null", timeout=5000)
    deadline = time.monotonic() + 10
    while "succeeded" not in page.locator("tr.firing").first.inner_text():
        assert time.monotonic() < deadline, page.locator("tr.firing").first.inner_text()
        time.sleep(0.3)
        page.reload()
    page.screenshot(path=str(SCREENSHOTS / "automation-detail.png"), full_page=True)

    # and it is listed with its last firing, and can be disabled from the list with htmx: the
    # state is a badge, the toggle a separate button that says what it will do
    page.goto(f"{server.url}/automations/")
    assert page.locator(".automation-row .badge").inner_text() == "Enabled"
    page.click("button.toggle")
    page.wait_for_selector(".automation-row .badge:text-is('Disabled')")
    assert page.locator("button.toggle").inner_text() == "Enable"
    page.screenshot(path=str(SCREENSHOTS / "automation-list.png"), full_page=True)


def test_the_form_from_a_template_says_the_trigger_in_words_previews_and_saves(
    server, token, browser_page
):
    page = browser_page
    for i in range(3):
        _post_event(server, token, event_data("prefect.flow-run.Failed", f"prefect.flow-run.{i}"))
    page.goto(f"{server.url}/automations/new/")
    page.click("a.starter[data-template=fails]")
    page.wait_for_url("**/automations/new/?template=fails")
    sentence = page.locator("#trigger-sentence")
    assert "Fires when prefect.flow-run.Failed happens" in sentence.inner_text()

    # The sentence follows the fields without a save.
    page.fill("#id_threshold", "2")
    page.fill("#id_within", "600")
    page.locator("#id_within").dispatch_event("change")
    expect_text = "2 times within 10 minutes"
    page.wait_for_function(
        "t => document.querySelector('#trigger-sentence').innerText.includes(t)", arg=expect_text
    )

    # Preview: the engine's replay over the stored failures, one firing per failed run.
    page.fill("#id_threshold", "1")
    page.click("#preview-button")
    page.wait_for_selector(".preview-count")
    assert page.locator(".preview-count").inner_text() == "3"
    assert page.locator(".preview-firings li").count() == 3
    assert page.locator(".preview-timeline .preview-mark").count() >= 1

    # One more action slot, without a save round trip.
    page.click("#add-action")
    page.wait_for_selector("select[name=actions-1-type]")
    page.select_option("#id_actions-0-type", "do-nothing")
    page.select_option("select[name=actions-1-type]", "do-nothing")
    page.click("#save")
    page.wait_for_url(f"{server.url}/automations/*/")
    assert page.locator("h1").inner_text().startswith("When a flow run fails")
    from automations.models import Automation

    saved = Automation.objects.get(name__contains="a flow run fails")
    assert len(saved.actions) == 2
    assert saved.trigger["match"] == {"prefect.resource.id": "prefect.flow-run.*"}
