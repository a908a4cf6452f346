"""Issue 15 in a real browser: failures that stand out, the histogram's readout and keys, clock
times in the reader's time zone, suggestions, loading states, keyboard, saved views, export, copy
link, ids on a phone, and the webhook list's toggle. Chromium against a real `manage.py serve`."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from events.models import ApiToken, Webhook
from events.webhooks.changes import STARTERS
from tests.factories import event_data, related

pytestmark = [pytest.mark.browser, pytest.mark.live]

SIZES = {
    "desk": {"viewport": {"width": 1440, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
FLOW = "prefect.flow.5e1f"
DEPLOYMENT = "prefect.deployment.77aa"


@pytest.fixture
def person(server, django_user_model):
    return django_user_model.objects.create_user("pat", "pat@example.com", "pw", is_staff=True)


@pytest.fixture
def open_page(browser: Browser, server, person):
    """A signed-in page in a fresh context (`options`: viewport, colour scheme, time zone…)."""
    contexts = []

    def open_(path: str = "/events/", **options) -> Page:
        client = Client()
        client.force_login(person)
        context = browser.new_context(**options)
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": server.url,
                }
            ]
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(server.url + path)
        return page

    yield open_
    for context in contexts:
        context.close()


def post(server, person, *events) -> None:
    _, secret = ApiToken.issue(person, name=f"seed-{uuid.uuid4().hex[:6]}")
    response = httpx.post(
        f"{server.url}/api/events", json=list(events), headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 204, response.text


def flow_run(state: str, name: str, *, ago: timedelta, run_id: str | None = None) -> dict:
    return event_data(
        f"prefect.flow-run.{state}",
        run_id or f"prefect.flow-run.{uuid.uuid4()}",
        labels={"prefect.resource.name": name, "prefect.state-type": state.upper()},
        related=[
            related(FLOW, "flow", **{"prefect.resource.name": "etl-orders"}),
            related(
                DEPLOYMENT, "deployment", **{"prefect.resource.name": "nightly-warehouse-load"}
            ),
            related("prefect.tag.prod", "tag"),
        ],
        payload={"intended": {"from": "RUNNING", "to": state.upper()}},
        occurred=datetime.now(UTC) - ago,
    )


@pytest.fixture
def runs(server, person) -> list[dict]:
    items = [
        flow_run("Completed", "golden-gecko", ago=timedelta(minutes=50)),
        flow_run("Failed", "crimson-fox", ago=timedelta(minutes=30)),
        flow_run("Running", "quiet-owl", ago=timedelta(minutes=10)),
        *[
            event_data(
                "acme.worker.heartbeat",
                "acme.worker.1",
                occurred=datetime.now(UTC) - timedelta(minutes=m),
            )
            for m in range(1, 55, 3)
        ],
    ]
    post(server, person, *items)
    return items


def color(page: Page, selector: str, prop: str = "color") -> str:
    return page.locator(selector).first.evaluate(f"e => getComputedStyle(e).{prop}")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_failures_stand_out_in_the_rows_and_the_stacked_histogram(
    open_page, runs, screenshots, size, theme
):
    failed, completed = runs[1], runs[0]
    page = open_page("/events/?range=1h", color_scheme=theme, **SIZES[size])

    failed_row = page.locator(f"#ev-{failed['id']}")
    completed_row = page.locator(f"#ev-{completed['id']}")
    expect(failed_row).to_have_class(re.compile(r"\bsev-failed\b"))
    expect(completed_row).to_have_class(re.compile(r"\bsev-completed\b"))
    # Not colour alone: each family has its own icon, and failures a stripe too.
    icon = "e => getComputedStyle(e.querySelector('.sev'), '::before').content"
    assert failed_row.evaluate(icon) == '"✕"' and completed_row.evaluate(icon) == '"✓"'
    assert "inset" in failed_row.evaluate("e => getComputedStyle(e).boxShadow")
    label = failed_row.locator(".ev-label")
    assert label.evaluate("e => getComputedStyle(e).color") != completed_row.locator(
        ".ev-label"
    ).evaluate("e => getComputedStyle(e).color")

    # The histogram: one segment class per severity, failures among them.
    expect(page.locator("svg.histogram .seg.s-failed")).to_have_count(1)
    expect(page.locator("svg.histogram .seg.s-completed")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(screenshots / f"glance-{size}-{theme}.png"))


def test_the_histogram_is_one_tab_stop_with_arrow_keys_and_a_readout(open_page, runs, screenshots):
    page = open_page("/events/?range=24h", **SIZES["desk"])
    bars = page.locator("svg.histogram a")
    n = bars.count()
    assert n >= 5  # the buckets with events; empty ones are not links
    assert page.locator("svg.histogram a[tabindex='0']").count() == 1

    # Tab into the histogram lands on one bar, the next Tab leaves it.
    page.locator("button[data-copy]").first.focus()
    page.keyboard.press("Tab")
    first = page.evaluate("document.activeElement.closest('svg.histogram') !== null")
    assert first, "Tab after Copy link reaches the histogram"
    readout = page.locator("#hist-readout")
    expect(readout).to_be_visible()
    expect(readout).to_contain_text("event")
    page.keyboard.press("ArrowRight")
    assert (
        page.evaluate(
            "[...document.querySelectorAll('svg.histogram a')].indexOf(document.activeElement)"
        )
        == 1
    )
    page.keyboard.press("End")
    assert (
        page.evaluate(
            "[...document.querySelectorAll('svg.histogram a')].indexOf(document.activeElement)"
        )
        == n - 1
    )
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('svg.histogram') === null")

    # Hovering the bar of the failure reads its counts out.
    failed_bar = page.locator("svg.histogram a:has(.s-failed)")
    failed_bar.hover()
    expect(readout).to_contain_text("1 failed")
    assert failed_bar.get_attribute("aria-label").endswith("Zoom in.")
    page.screenshot(path=str(screenshots / "histogram-readout.png"))

    # Enter (or a click) zooms into that bucket.
    failed_bar.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"since=.*until="))
    expect(page.locator(f"#ev-{runs[1]['id']}")).to_be_visible()


def test_clock_times_read_in_the_browsers_zone_or_utc_and_relative_times_toggle(
    open_page, server, person, screenshots
):
    base = datetime.now(UTC).replace(second=10, microsecond=0) - timedelta(minutes=20)
    pair = [
        event_data("acme.tick", "acme.a", occurred=base),
        event_data("acme.tick", "acme.b", occurred=base + timedelta(seconds=20)),
    ]
    alone = event_data("acme.tick", "acme.c", occurred=base + timedelta(minutes=5))
    post(server, person, *pair, alone)
    zone = ZoneInfo("Asia/Tokyo")
    page = open_page("/events/", timezone_id="Asia/Tokyo", **SIZES["desk"])

    def shown(item) -> str:
        return page.locator(f"#ev-{item['id']} time.ev-time").inner_text()

    local = base.astimezone(zone)
    # Seconds where a neighbour shares the minute; not for a row alone in its minute.
    assert shown(pair[0]) == local.strftime("%H:%M:%S")
    assert shown(pair[1]) == (local + timedelta(seconds=20)).strftime("%H:%M:%S")
    assert shown(alone) == (local + timedelta(minutes=5)).strftime("%H:%M")
    expect(page.locator("[data-zone]")).to_have_text("times in Asia/Tokyo")
    expect(page.locator(f"#ev-{alone['id']} .ev-ago")).to_be_hidden()

    # A row that arrives live reads in the same zone.
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    fresh_at = datetime.now(UTC).replace(microsecond=0)
    fresh = event_data("acme.tick", "acme.d", occurred=fresh_at)
    post(server, person, fresh)
    expect(page.locator(f"#ev-{fresh['id']} time.ev-time")).to_have_text(
        fresh_at.astimezone(zone).strftime("%H:%M")
    )

    page.click(".usermenu > summary")
    saved = "/account/preferences/"
    with page.expect_response(lambda r: saved in r.url and r.status == 204):
        page.locator(".time-prefs label", has_text="UTC").click()
    with page.expect_response(lambda r: saved in r.url and r.status == 204):
        page.locator(".time-prefs input[name=relative_times]").check()
    assert shown(alone) == (base + timedelta(minutes=5)).strftime("%H:%M")
    expect(page.locator(f"#ev-{alone['id']} .ev-ago")).to_be_visible()
    page.screenshot(path=str(screenshots / "times-utc-relative.png"))

    # Remembered for the person: another browser (another zone) opens in UTC, relative on.
    other = open_page("/events/", timezone_id="America/New_York", **SIZES["desk"])
    expect(other.locator("[data-zone]")).to_have_text("times in UTC")
    assert other.locator(f"#ev-{alone['id']} time.ev-time").inner_text() == (
        base + timedelta(minutes=5)
    ).strftime("%H:%M")
    expect(other.locator(f"#ev-{alone['id']} .ev-ago")).to_be_visible()


def test_inputs_suggest_resources_by_name_and_chips_show_names(open_page, runs, screenshots):
    page = open_page("/events/", **SIZES["desk"])
    crimson = runs[1]["resource"]["prefect.resource.id"]

    field = page.locator("input[name=resource]")
    field.click()
    field.type("crimson")
    options = page.locator("#resource-options option")
    expect(options).to_have_count(1)
    assert options.first.get_attribute("value") == crimson
    expect(options.first).to_have_text("crimson-fox")

    field.fill(crimson)
    page.click("#filters button.primary")
    chip = page.locator(".chip .chip-name")
    expect(chip).to_have_text("crimson-fox")
    assert chip.get_attribute("title") == crimson
    expect(page.locator("article.ev")).to_have_count(1)

    related_field = page.locator("input[name=related]")
    page.click("#filters details.menu:has(input[name=related]) > summary")
    related_field.click()
    related_field.type("nightly")
    expect(page.locator("#related-options option")).to_have_text(
        ["deployment: nightly-warehouse-load"]
    )
    page.screenshot(path=str(screenshots / "suggestions.png"))


def test_every_htmx_request_shows_a_loading_state_and_a_slow_search_says_what_it_does(
    open_page, runs
):
    page = open_page("/events/", **SIZES["desk"])
    release = []

    def slow(route):
        # Hold the search's answer until the page has shown that it is waiting.
        release.append(route)

    page.route(re.compile(r".*/events/\?.*q=heartbeat.*"), slow)
    page.fill("#q", "heartbeat")
    page.press("#q", "Enter")
    busy = page.locator("#busy")
    expect(busy).to_have_class(re.compile(r"\bon\b"))
    expect(busy.locator(".busy-text")).to_have_text(
        "Searching the text of every event in this range…"
    )
    expect(page.locator("#feed-main")).to_have_attribute("aria-busy", "true")
    release[0].continue_()
    expect(busy).not_to_have_class(re.compile(r"\bon\b"))
    expect(busy.locator(".busy-text")).to_have_text("")
    expect(page.locator("article.ev")).to_have_count(len(runs) - 3)


def test_keyboard_moves_through_rows_opens_one_goes_back_and_shows_help(open_page, runs):
    page = open_page("/events/", **SIZES["desk"])
    rows = page.locator("article.ev")
    expect(rows.first).to_be_visible()

    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    assert page.evaluate("document.activeElement.classList.contains('ev-label')")
    second = rows.nth(1).get_attribute("id").removeprefix("ev-")

    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/events/{second}/$"))
    page.keyboard.press("Escape")
    expect(page).to_have_url(re.compile(r"/events/$"))

    page.keyboard.press("?")
    dialog = page.locator("#keys")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("next / previous event")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_saved_views_are_saved_from_the_feed_listed_and_shared_by_link(
    open_page, runs, server, django_user_model
):
    page = open_page("/events/?event=prefect.flow-run.Failed&range=7d", **SIZES["desk"])
    page.click("#views-menu > summary")
    page.fill("#views-menu input[name=name]", "Failed runs")
    page.click("#views-menu button[type=submit]")
    expect(page.locator(".toast")).to_contain_text("View “Failed runs” saved")
    expect(page).to_have_url(re.compile(r"event=prefect.flow-run.Failed"))
    page.click("#views-menu > summary")
    expect(page.locator("#views-menu .view-list a")).to_have_text(["Failed runs"])

    page.goto(server.url + "/views/")
    share = page.locator("button[data-copy]", has_text="Copy link").get_attribute("data-copy")
    assert re.fullmatch(rf"{re.escape(server.url)}/views/[0-9a-f-]+/", share)

    colleague = django_user_model.objects.create_user("bob", "bob@example.com", "pw")
    client = Client()
    client.force_login(colleague)
    other = page.context.browser.new_context()
    other.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": server.url,
            }
        ]
    )
    shared = other.new_page()
    shared.goto(share)
    expect(shared).to_have_url(re.compile(r"/events/\?range=7d&event=prefect.flow-run.Failed$"))
    expect(shared.locator("article.ev")).to_have_count(1)
    other.close()


def test_export_downloads_the_current_filter(open_page, runs):
    page = open_page("/events/?resource=acme.worker.*&range=1h", **SIZES["desk"])
    page.click("#export-menu > summary")
    with page.expect_download() as download:
        page.locator("#export-menu a", has_text="CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == len(runs) - 3
    assert {r["resource_id"] for r in rows} == {"acme.worker.1"}
    assert download.value.suggested_filename.endswith(".csv")


def test_copy_link_copies_the_filtered_feed_and_the_event(open_page, runs, server):
    page = open_page(
        "/events/?range=1h&event=prefect.flow-run.Failed",
        permissions=["clipboard-read", "clipboard-write"],
        **SIZES["desk"],
    )
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator(".toast")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == (
        f"{server.url}/events/?range=1h&event=prefect.flow-run.Failed"
    )

    page.goto(f"{server.url}/events/{runs[1]['id']}/")
    page.get_by_role("button", name="Copy link").click()
    assert (
        page.evaluate("navigator.clipboard.readText()") == f"{server.url}/events/{runs[1]['id']}/"
    )


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_on_a_phone_long_ids_are_cut_in_the_middle_and_copied_whole(
    open_page, runs, screenshots, theme
):
    failed = runs[1]
    page = open_page(
        f"/events/{failed['id']}/",
        color_scheme=theme,
        permissions=["clipboard-read", "clipboard-write"],
        **SIZES["phone"],
    )
    resource_id = failed["resource"]["prefect.resource.id"]
    expect(page.locator("h1")).to_have_text("Flow run crimson-fox failed")
    cut = page.locator(".idline .mid").nth(1)
    expect(cut.locator(".mid-tail")).to_be_visible()
    assert cut.get_attribute("title") == resource_id
    box = cut.bounding_box()
    assert box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.get_by_role("button", name="Copy resource ID").click()
    assert page.evaluate("navigator.clipboard.readText()") == resource_id
    page.screenshot(path=str(screenshots / f"detail-phone-ids-{theme}.png"), full_page=True)

    # The feed on a phone: rows fit, times readable, the resource a link to its page.
    page.goto(page.url.split("/events/")[0] + "/events/?range=1h")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.locator(f"#ev-{failed['id']} a.res").click()
    expect(page).to_have_url(re.compile(r"/resources/prefect.flow-run\."))
    expect(page.locator("h1")).to_contain_text("crimson-fox")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(screenshots / f"resource-phone-{theme}.png"), full_page=True)


def test_the_webhook_list_toggle_stays_on_the_list(open_page, server):
    webhook = Webhook.objects.create(name="CI builds", template=STARTERS["static"])
    page = open_page("/webhooks/", **SIZES["desk"])

    page.get_by_role("button", name="Disable CI builds").click()
    expect(page.locator(".webhook-row .badge.state")).to_have_text("disabled")
    expect(page.locator(".toast")).to_contain_text("Webhook disabled")
    assert page.url == f"{server.url}/webhooks/"
    expect(page.get_by_role("button", name="Enable CI builds")).to_be_focused()
    webhook.refresh_from_db()
    assert not webhook.enabled
