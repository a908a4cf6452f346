"""In a real browser: the notification presets' forms, the write-only secret field, "Send test"
showing the service's real answer, and the webhook form's verification settings.

These pages call local receivers, which eventsite refuses by default, so they run against a
server of their own started with `EVENTSITE_ACTIONS_ALLOW_PRIVATE=1`.
"""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from automations.actions import parse_action
from automations.models import Automation
from events.models import Webhook
from tests.automations.actions.receivers import Receiver
from tests.automations.actions.shapes import slack_problems
from tests.automations.conftest import settle
from tests.browser.conftest import signed_in_page

pytestmark = [pytest.mark.browser, pytest.mark.live]


@pytest.fixture
def server(private_server, transactional_db):
    yield private_server
    settle()


@pytest.fixture
def page(browser, server, user):
    with signed_in_page(browser, server, user, timeout_ms=15_000) as page:
        yield page


@pytest.fixture
def slack():
    def answer(request):
        problems = slack_problems(json.loads(request["body"]))
        if problems:
            return 400, {"content-type": "text/plain"}, "; ".join(problems).encode()
        return 200, {"content-type": "text/plain", "x-slack-req": "r-1"}, b"ok"

    receiver = Receiver(answer)
    yield receiver
    receiver.close()


def test_the_slack_preset_form_keeps_its_url_secret_and_send_test_shows_slacks_answer(
    server, page, slack, screenshots
):
    secret = uuid.uuid4().hex
    url = f"{slack.url}/services/T000/B000/{secret}"
    page.goto(f"{server.url}/automations/new/")
    page.fill("#id_name", "Orders to Slack")
    page.fill("#id_expect", "acme.order.created")
    page.select_option("#id_actions-0-type", "notify-slack")

    # Only the Slack preset's own fields show, with defaults that link to the event.
    expect(page.locator("#id_actions-0-slack-webhook_url")).to_be_visible()
    expect(page.locator("#id_actions-0-pagerduty-routing_key")).to_be_hidden()
    expect(page.locator("#id_actions-0-webhook-url")).to_be_hidden()
    assert "event.event" in page.input_value("#id_actions-0-slack-message")
    page.fill("#id_actions-0-slack-webhook_url", url)
    page.screenshot(path=str(screenshots / "preset-slack-form.png"), full_page=True)
    page.click("#save")
    page.wait_for_url(f"{server.url}/automations/*/")

    automation = Automation.objects.get(name="Orders to Slack")
    assert secret not in page.content()
    page.click("button.send-test")
    result = page.locator("#test-result")
    expect(result).to_contain_text("succeeded", timeout=60_000)
    expect(result.locator(".badge.status")).to_have_text("200")
    expect(result.locator(".response-body")).to_have_text("ok")
    expect(result).to_contain_text("x-slack-req")
    assert secret not in page.content()
    page.screenshot(path=str(screenshots / "preset-send-test.png"), full_page=True)
    assert slack.requests[-1]["path"].endswith(secret)

    # Editing shows the URL as set, never the URL; left alone it is kept.
    page.goto(f"{server.url}/automations/{automation.id}/edit/")
    field = page.locator(".field-webhook_url").first
    expect(field.locator(".secret-state")).to_contain_text("•••• set")
    expect(page.locator("#id_actions-0-slack-webhook_url")).to_be_hidden()  # behind "Replace"
    assert secret not in page.content()
    field.locator("summary").click()
    expect(page.locator("#id_actions-0-slack-webhook_url")).to_be_visible()
    expect(page.locator("#id_actions-0-slack-webhook_url")).to_have_value("")
    page.screenshot(path=str(screenshots / "preset-secret-set.png"), full_page=True)
    page.fill("#id_actions-0-slack-title", "Orders (edited)")
    page.click("#save")
    page.wait_for_url(f"{server.url}/automations/{automation.id}/")
    automation.refresh_from_db()
    action = parse_action(automation.actions[0])
    assert action.webhook_url == url and action.title == "Orders (edited)"


def test_the_pagerduty_preset_form_says_what_is_missing_next_to_the_field(
    server, page, screenshots
):
    page.goto(f"{server.url}/automations/new/")
    page.fill("#id_name", "Page the on-call")
    page.fill("#id_expect", "acme.payment.failed")
    page.select_option("#id_actions-0-type", "notify-pagerduty")
    expect(page.locator("#id_actions-0-pagerduty-severity")).to_be_visible()
    expect(page.locator(".kind[data-kind='notify-pagerduty']")).to_contain_text(
        "resolves it when the automation resolves"
    )
    page.select_option("#id_actions-0-pagerduty-severity", "critical")
    page.click("#save")

    error = page.locator("#id_actions-0-pagerduty-routing_key_error")
    expect(error).to_have_text("This field is required.")
    expect(page.locator("#id_actions-0-pagerduty-severity")).to_have_value("critical")
    page.screenshot(path=str(screenshots / "preset-pagerduty-error.png"), full_page=True)
    assert not Automation.objects.exists()


def test_the_webhook_form_shows_the_settings_of_the_chosen_verification(server, page, screenshots):
    page.goto(f"{server.url}/webhooks/new/")
    page.fill("#id_name", "GitHub pushes")
    expect(page.locator("#id_verification_secret")).to_be_hidden()
    page.select_option("#id_verification", "hmac")
    expect(page.locator("#id_verification_secret")).to_be_visible()
    expect(page.locator("#id_signature_header")).to_be_visible()
    page.select_option("#id_verification", "github")
    expect(page.locator("#id_signature_header")).to_be_hidden()
    page.fill("#id_verification_secret", "gh-secret-value-1")
    page.screenshot(path=str(screenshots / "webhook-verification-form.png"), full_page=True)
    page.click("#webhook-form button[type=submit]")
    page.wait_for_url(f"{server.url}/webhooks/*/")

    webhook = Webhook.objects.get(name="GitHub pushes")
    assert webhook.verification == "github" and webhook.verification_secret == "gh-secret-value-1"
    assert "gh-secret-value-1" not in page.content()
    expect(page.locator(".secret-state")).to_contain_text("•••• set")
    expect(page.locator(".receive")).to_contain_text("GitHub signature")
    page.screenshot(path=str(screenshots / "webhook-verification-set.png"), full_page=True)
