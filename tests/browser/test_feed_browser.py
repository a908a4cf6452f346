"""The feed and event pages in a real browser (Chromium) against a real `manage.py serve`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from events.models import ApiToken
from tests.factories import event_data, related

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "a known test password 42"


@pytest.fixture
def person(server, django_user_model):
    return django_user_model.objects.create_user("pat", "pat@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def page(browser, server, person):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def log_in(page: Page, base: str, next_path: str = "/events/") -> None:
    page.goto(base + next_path)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", "pat")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(next_path) + r"($|\?)"))


def post_events(server, person, *events) -> None:
    _, secret = ApiToken.issue(person, name="browser")
    response = httpx.post(
        f"{server.url}/api/events", json=list(events), headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 204, response.text


def seed(server, person) -> list[dict]:
    now = datetime.now(UTC)
    items = [
        event_data(
            "prefect.flow-run.Completed",
            f"prefect.flow-run.{i}",
            labels={"prefect.resource.name": f"crimson-fox-{i}"},
            related=[
                related("prefect.flow.etl", "flow", **{"prefect.resource.name": "nightly-etl"}),
                related("prefect.tag.prod", "tag"),
            ],
            payload={"state": {"type": "COMPLETED"}, "duration": 12.5 + i},
            occurred=now - timedelta(minutes=3 * i),
        )
        for i in range(6)
    ] + [
        event_data(
            "acme.order.created",
            f"acme.order.{i}",
            labels={"prefect.resource.name": f"Order {i}", "env": "prod"},
            related=[related("acme.customer.7", "customer", **{"prefect.resource.name": "ACME"})],
            payload={"amount": 10 * i, "currency": "EUR"},
            occurred=now - timedelta(minutes=7 * i + 1),
        )
        for i in range(8)
    ]
    post_events(server, person, *items)
    return items


def test_log_in_filter_by_prefix_watch_live_open_detail_and_automate(
    page: Page, server, person, screenshots
):
    seeded = seed(server, person)
    log_in(page, server.url)
    expect(page.locator("article.ev")).to_have_count(14)

    # Filter by a name prefix through the picker.
    page.click("#picker > summary")
    page.fill(".picker-search", "acme.order")
    page.check("input[name=event][value='acme.order.*']")
    page.click("#picker .picker button[type=submit]")
    expect(page).to_have_url(re.compile(r"event=acme.order.%2A|event=acme\.order\.\*"))
    expect(page.locator("article.ev")).to_have_count(8)
    for name in page.locator("article.ev .ev-name").all_inner_texts():
        assert name.startswith("acme.order.")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    # Events posted through the API: the matching one appears on top, without a reload.
    page.evaluate("window.__marker = 'same page'")
    fresh = event_data(
        "acme.order.created",
        "acme.order.99",
        labels={"prefect.resource.name": "Order 99", "env": "prod", "region": "eu-west-1"},
        related=[
            related("acme.customer.7", "customer", **{"prefect.resource.name": "ACME"}),
            related("prefect.tag.priority", "tag"),
        ],
        payload={"amount": 990, "currency": "EUR", "lines": [{"sku": "A-1", "qty": 3}]},
        follows=seeded[-1]["id"],
    )
    post_events(server, person, event_data("prefect.flow-run.Running", "prefect.flow-run.x"), fresh)
    row = page.locator(f"#ev-{fresh['id']}")
    expect(row).to_be_visible(timeout=5000)
    expect(page.locator("article.ev").first).to_have_id(f"ev-{fresh['id']}")
    expect(page.locator("article.ev")).to_have_count(9)
    expect(page.locator(".summary .total b")).to_have_text("9")
    assert page.evaluate("window.__marker") == "same page"
    page.screenshot(path=str(screenshots / "feed.png"), full_page=True)

    # Open the detail page by clicking the row.
    row.click(position={"x": 1300, "y": 10})  # on the payload preview: the whole row is the link
    expect(page).to_have_url(f"{server.url}/events/{fresh['id']}/")
    expect(page.locator("h1")).to_have_text("Order 99 created")
    expect(page.locator("#payload-json")).to_contain_text('"amount": 990')
    expect(page.locator(f"#ev-{seeded[-1]['id']}")).to_be_visible()  # the event it follows
    page.screenshot(path=str(screenshots / "detail.png"), full_page=True)

    page.click("text=Raw JSON")
    expect(page.locator("#raw-json")).to_contain_text(f'"id": "{fresh["id"]}"')

    page.click("#automate")
    expect(page).to_have_url(f"{server.url}/automations/new/?event={fresh['id']}")


def test_paused_feed_holds_new_rows_behind_a_bar(page: Page, server, person):
    seed(server, person)
    log_in(page, server.url)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    page.click("#pause")
    expect(page.locator("#live")).to_have_attribute("data-state", "paused")
    fresh = event_data("acme.order.created", "acme.order.50")
    post_events(server, person, fresh)

    bar = page.locator("#new-bar")
    expect(bar).to_contain_text("1 new event")
    expect(page.locator(f"#ev-{fresh['id']}")).to_have_count(0)
    bar.click()
    expect(page.locator(f"#ev-{fresh['id']}")).to_be_visible()
    expect(page.locator("#live")).to_have_attribute("data-state", "live")


def test_scrolled_feed_counts_new_rows_instead_of_moving(page: Page, server, person):
    now = datetime.now(UTC)
    post_events(
        server,
        person,
        *[event_data(resource_id=f"r.{i}", occurred=now - timedelta(seconds=i)) for i in range(50)],
    )
    log_in(page, server.url)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.mouse.wheel(0, 1500)
    page.wait_for_function("window.scrollY > 500")

    fresh = event_data("acme.order.created", "acme.order.51")
    post_events(server, person, fresh)

    expect(page.locator("#new-bar")).to_contain_text("1 new event")
    assert page.evaluate("window.scrollY") > 500
    page.click("#new-bar")
    expect(page.locator(f"#ev-{fresh['id']}")).to_be_visible()


def test_feed_reconnects_after_a_server_restart(page: Page, server, person):
    seed(server, person)
    log_in(page, server.url)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    server.restart()
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=20_000)
    fresh = event_data("acme.order.created", "acme.order.77")
    post_events(server, person, fresh)

    expect(page.locator(f"#ev-{fresh['id']}")).to_be_visible(timeout=5000)


def test_load_more_appends_the_next_page(page: Page, server, person):
    now = datetime.now(UTC)
    post_events(
        server,
        person,
        *[event_data(resource_id=f"r.{i}", occurred=now - timedelta(seconds=i)) for i in range(70)],
    )
    log_in(page, server.url)
    expect(page.locator("article.ev")).to_have_count(50)

    # Scrolling it into view is enough (infinite scroll); without JS it is a plain link.
    page.locator("#load-more").scroll_into_view_if_needed()

    expect(page.locator("article.ev")).to_have_count(70)
    ids = page.locator("article.ev").evaluate_all("rows => rows.map(r => r.id)")
    assert len(set(ids)) == 70
    expect(page.locator("#load-more")).to_have_count(0)
    assert page.url == f"{server.url}/events/"


def test_slash_focuses_search_and_escape_clears_it(page: Page, server, person):
    log_in(page, server.url)

    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type("refund")
    page.keyboard.press("Escape")

    expect(page.locator("#q")).to_have_value("")
    expect(page.locator("#q")).not_to_be_focused()


def test_bad_filter_shows_an_error_in_the_page(page: Page, server, person):
    log_in(page, server.url)

    page.goto(f"{server.url}/events/?since=not-a-date&label=nonsense")

    expect(page.locator(".errors")).to_contain_text("Enter a valid date/time")
    expect(page.locator(".errors")).to_contain_text("is not a label filter")


def test_untrusted_event_runs_no_script_in_feed_live_or_detail(page: Page, server, person):
    log_in(page, server.url)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("window.__pwned = 0")
    evil = event_data(
        "acme.<img src=x onerror=window.__pwned++>",
        "acme.<script>window.__pwned++</script>",
        labels={"prefect.resource.name": "<img src=x onerror=window.__pwned++>"},
        related=[related("javascript:window.__pwned++", "tag")],
        payload={"x": "<script>window.__pwned++</script>"},
    )
    post_events(server, person, evil)
    expect(page.locator(f"#ev-{evil['id']}")).to_be_visible()  # live row
    page.reload()
    page.evaluate("window.__pwned = window.__pwned || 0")
    expect(page.locator(f"#ev-{evil['id']}")).to_be_visible()  # server-rendered row
    assert page.evaluate("window.__pwned") == 0
    badge = page.locator(f"#ev-{evil['id']} a.badge")
    assert badge.get_attribute("href").startswith("/events/?related=javascript")

    page.goto(f"{server.url}/events/{evil['id']}/")
    page.evaluate("window.__pwned = window.__pwned || 0")
    expect(page.locator("h1")).to_contain_text("<img")
    assert page.evaluate("window.__pwned") == 0


def test_phone_and_dark_mode_screenshots(browser, server, person, screenshots):
    seed(server, person)
    for name, options in {
        "feed-phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True},
        "feed-dark": {"viewport": {"width": 1440, "height": 900}, "color_scheme": "dark"},
    }.items():
        context = browser.new_context(**options)
        page = context.new_page()
        log_in(page, server.url)
        expect(page.locator("article.ev")).to_have_count(14)
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=False)
        context.close()
