"""Every page, at desk and phone width, light and dark: axe-core finds nothing serious, nothing
overflows sideways, no request 404s (favicon included), and a full-page screenshot is kept in
var/screenshots/ to be looked at."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from events.models import ApiToken, SavedView
from tests.automations.conftest import settle
from tests.factories import event_data, related

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "a known test password 42"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
BLOCKING = {"serious", "critical"}
SIZES = {"desk": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
TEMPLATE = (
    '{"event": "ci.build.{{ body.status }}", '
    '"resource": {"prefect.resource.id": "ci.build.{{ body.id }}", '
    '"prefect.resource.name": "build {{ body.id }}"}}'
)


@pytest.fixture
def server(server):
    """The live server, left only once its engine has finished reacting to the test's events."""
    yield server
    settle()


@pytest.fixture
def person(server, django_user_model):
    return django_user_model.objects.create_user("pat", "pat@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def site(server, person) -> dict[str, str]:
    """Data for every page: events with related resources and a follows chain, an automation
    that has fired, a webhook with accepted and failed requests, a token. Returns the paths."""
    _, secret = ApiToken.issue(person, name="laptop")
    api = httpx.Client(base_url=f"{server.url}/api", headers={"Authorization": f"Bearer {secret}"})
    now = datetime.now(UTC)
    flow_runs = [
        event_data(
            f"prefect.flow-run.{state}",
            f"prefect.flow-run.{uuid.uuid4()}",
            labels={"prefect.resource.name": name, "prefect.state-type": state.upper()},
            related=[
                related(f"prefect.flow.{uuid.uuid4()}", "flow", **{"prefect.resource.name": "etl"}),
                related(
                    f"prefect.deployment.{uuid.uuid4()}",
                    "deployment",
                    **{"prefect.resource.name": "nightly-warehouse-load"},
                ),
                related("prefect.tag.prod", "tag"),
            ],
            payload={"intended": {"from": "RUNNING", "to": state.upper()}},
            occurred=now - timedelta(minutes=2 * i + 1),
        )
        for i, (state, name) in enumerate(
            [("Completed", "golden-gecko"), ("Failed", "crimson-fox"), ("Running", "quiet-owl")]
        )
    ]
    first = event_data(
        "acme.order.created",
        "acme.order.31",
        labels={"prefect.resource.name": "Order 31", "env": "prod"},
        related=[related("acme.customer.7", "customer", **{"prefect.resource.name": "ACME"})],
        payload={"amount": 310, "currency": "EUR"},
        occurred=now - timedelta(minutes=9),
    )
    second = event_data(
        "acme.payment.captured",
        "acme.payment.9",
        labels={"prefect.resource.name": "Payment 9"},
        related=[related("acme.order.31", "order", **{"prefect.resource.name": "Order 31"})],
        payload={"amount": 310, "lines": [{"sku": "A-1", "qty": 3}], "note": "x" * 300},
        occurred=now - timedelta(minutes=8),
        follows=first["id"],
    )
    failed_run = flow_runs[1]
    task_runs = [
        event_data(
            f"prefect.task-run.{state}",
            f"prefect.task-run.{uuid.uuid4()}",
            labels={"prefect.resource.name": f"{task}-0", "prefect.state-type": state.upper()},
            related=[
                related(
                    failed_run["resource"]["prefect.resource.id"],
                    "flow-run",
                    **{"prefect.resource.name": "crimson-fox"},
                ),
                related("prefect.tag.prod", "tag"),
            ],
            occurred=now - timedelta(minutes=3, seconds=30 - 10 * i),
        )
        for i, (task, state) in enumerate([("extract", "Completed"), ("load", "Failed")])
    ]
    response = api.post("/events", json=[*flow_runs, *task_runs, first, second])
    assert response.status_code == 204, response.text
    SavedView.objects.create(
        owner=person, name="Failed runs", query="event=prefect.flow-run.Failed&range=7d"
    )

    response = api.post(
        "/automations/",
        json={
            "name": "Orders from ACME",
            "description": "Tell the shop channel about every order.",
            "enabled": True,
            "tags": ["shop"],
            "trigger": {
                "type": "event",
                "match": {"prefect.resource.id": "acme.order.*"},
                "match_related": {},
                "after": [],
                "expect": ["acme.order.created"],
                "for_each": [],
                "posture": "Reactive",
                "threshold": 1,
                "within": 0.0,
            },
            "actions": [{"type": "do-nothing"}],
            "actions_on_trigger": [],
            "actions_on_resolve": [],
            "owner_resource": None,
        },
    )
    assert response.status_code == 201, response.text
    automation = response.json()["id"]
    fired = event_data("acme.order.created", "acme.order.32", labels={"env": "prod"})
    assert api.post("/events", json=[fired]).status_code == 204
    deadline = time.monotonic() + 15
    while "automation.triggered" not in api.post("/events/filter", json={}).text:
        assert time.monotonic() < deadline, "the automation did not fire"
        time.sleep(0.2)

    response = api.post("/webhooks/", json={"name": "CI builds", "template": TEMPLATE})
    assert response.status_code == 201, response.text
    webhook = response.json()
    assert httpx.post(webhook["url"], json={"status": "passed", "id": 7}).status_code == 204
    # A quote in the value breaks the rendered JSON: a failed request in the log.
    assert httpx.post(webhook["url"], json={"status": 'a"b', "id": 8}).status_code == 400
    assert httpx.post(f"{server.url}/hooks/rotated-away", content=b"lost?").status_code == 404

    return {
        "feed": "/events/",
        "detail": f"/events/{second['id']}/",
        "detail-raw": f"/events/{second['id']}/?tab=raw",
        "detail-failed": f"/events/{failed_run['id']}/",
        "feed-filtered": "/events/?resource=acme.order.31&related=acme.customer.7&range=1h",
        "resource": "/resources/acme.order.31/",
        "resource-flow-run": f"/resources/{failed_run['resource']['prefect.resource.id']}/",
        "views": "/views/",
        "automations": "/automations/",
        "automation-new": f"/automations/new/?event={first['id']}",
        "automation": f"/automations/{automation}/",
        "explain": f"/automations/{automation}/explain?event={first['id']}",
        "webhooks": "/webhooks/",
        "webhook-new": "/webhooks/new/",
        "webhook": f"/webhooks/{webhook['id']}/",
        "tokens": "/account/tokens/",
        "audit": "/audit/",
        "not-found": f"/events/{uuid.uuid4()}/",
    }


def audit(page: Page) -> list[dict]:
    """axe-core's violations on the page as it is now, reduced to what a report needs."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => ({target: n.target.join(" "),
                                                      summary: n.failureSummary})),
                count: v.nodes.length,
            }));
        }"""
    )


def settle_page(page: Page, name: str) -> None:
    """Wait for what a page loads after the load event, so axe and the screenshot see it."""
    page.wait_for_load_state("networkidle")
    if name in ("webhook", "webhook-new"):  # the test panel renders the sample on load
        expect(page.locator("#test-result")).to_contain_text("would store this event")
    if name == "automation-new":  # with its preview beside (or under) the form
        page.click("#preview-button")
        expect(page.locator(".preview-count").first).to_have_text("1")
    if name in ("feed", "audit", "feed-filtered"):
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("document.fonts.ready")


def log_in(page: Page, base: str) -> None:
    page.fill("#id_username", "pat")
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/events/$"))


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_passes_axe_fits_the_screen_and_loads_everything(
    browser, server, site, screenshots, size, theme
):
    context = browser.new_context(
        viewport=SIZES[size],
        color_scheme=theme,
        is_mobile=size == "phone",
        has_touch=size == "phone",
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    missing: list[str] = []
    page.on(
        "response",
        lambda r: (
            missing.append(r.url)
            if r.status == 404 and r.request.resource_type != "document"
            else None
        ),
    )
    report: dict[str, list[dict]] = {}
    problems: list[str] = []

    def check(name: str) -> None:
        settle_page(page, name)
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if width[0] > width[1]:
            problems.append(f"{name}: {width[0]} px wide in a {width[1]} px window")
        page.screenshot(path=str(screenshots / f"{name}-{size}-{theme}.png"), full_page=True)
        report[name] = audit(page)
        for v in report[name]:
            if v["impact"] in BLOCKING:
                problems.append(f"{name}: {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}")

    page.goto(server.url + "/events/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    check("login")
    log_in(page, server.url)
    for name, path in site.items():
        response = page.goto(server.url + path)
        assert response.status == (404 if name == "not-found" else 200), name
        check(name)

    # The feed's menus and the keyboard help, open.
    page.goto(server.url + site["feed"])
    page.click("#views-menu > summary")
    check("feed-views-menu")
    page.keyboard.press("Escape")
    page.click("#export-menu > summary")
    check("feed-export-menu")
    page.keyboard.press("Escape")
    page.click(".usermenu > summary")
    check("user-menu")
    page.keyboard.press("Escape")
    page.locator("body").press("?")
    expect(page.locator("#keys")).to_be_visible()
    check("keys-help")
    page.keyboard.press("Escape")

    # A saved form: the page again, with its confirmation toast.
    page.goto(server.url + site["webhook"])
    page.click("#webhook-form button[type=submit]")
    expect(page.locator(".toast[role=status]")).to_contain_text("Webhook saved.")
    check("saved-toast")

    (screenshots / f"axe-{size}-{theme}.json").write_text(json.dumps(report, indent=2))
    context.close()
    assert not missing, f"requests that 404: {missing}"
    assert not problems, "\n".join(problems)
