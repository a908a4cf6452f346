"""What only a browser shows about the layout: the phone's menus, the feed's filter fold, the
theme switch (remembered, applied before the first paint) and the favicon."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_feed_browser import PASSWORD, seed
from tests.browser.test_pages_a11y import audit

pytestmark = [pytest.mark.browser, pytest.mark.live]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESK = {"viewport": {"width": 1440, "height": 900}}
DARK_BACKGROUND = "rgb(14, 17, 22)"
LIGHT_BACKGROUND = "rgb(246, 247, 249)"


@pytest.fixture
def person(server, django_user_model):
    return django_user_model.objects.create_user("pat", "pat@example.com", PASSWORD)


def open_page(browser: Browser, server, options: dict) -> Page:
    page = browser.new_context(**options).new_page()
    page.set_default_timeout(10_000)
    page.goto(server.url + "/events/")
    page.fill("#id_username", "pat")
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/events/$"))
    return page


def fits(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_on_a_phone_the_navigation_and_the_filters_fold_into_menus(
    browser, server, person, screenshots
):
    seed(server, person)
    page = open_page(browser, server, PHONE)

    # The bar's links are behind "Menu"; the filters behind "Filters"; search stays in reach.
    expect(page.locator(".topbar > .nav")).to_be_hidden()
    expect(page.locator("#filter-fold")).not_to_have_attribute("open", "")
    expect(page.locator("#range")).to_be_hidden()
    expect(page.locator("#q")).to_be_visible()
    first_row = page.locator("article.ev").first.bounding_box()
    assert first_row["y"] < 844 / 2, "events start in the first half of the screen"

    page.click(".sitemenu > summary")
    menu = page.locator(".sitemenu .nav")
    expect(menu.get_by_role("link", name="Webhooks")).to_be_visible()
    assert fits(page)
    page.screenshot(path=str(screenshots / "phone-menu-open.png"))
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()

    page.click("#filter-fold > summary")
    expect(page.locator("#range")).to_be_visible()
    expect(page.locator("input[name=resource]")).to_be_visible()
    assert fits(page)
    page.screenshot(path=str(screenshots / "phone-filters-open.png"))

    # Applying a filter folds them again (on a phone the results are what you want to see).
    page.fill("input[name=resource]", "acme.order.*")
    page.click("#filters button.primary")
    expect(page.locator("article.ev")).to_have_count(8)
    expect(page.locator("#filter-fold > summary")).to_have_text(re.compile(r"Filters · 1"))
    expect(page.locator("#range")).to_be_hidden()

    page.click(".usermenu > summary")
    expect(page.get_by_role("button", name="Dark")).to_be_visible()
    assert fits(page)
    page.screenshot(path=str(screenshots / "phone-user-menu-open.png"))


def test_on_a_wide_screen_the_filters_are_open_and_the_menus_are_a_bar(
    browser, server, person, screenshots
):
    page = open_page(browser, server, DESK)
    expect(page.locator("#empty h2")).to_have_text("No events yet")
    page.screenshot(path=str(screenshots / "feed-empty-desk.png"))
    assert not [v for v in audit(page) if v["impact"] in ("serious", "critical")]

    expect(page.locator(".topbar > .nav")).to_be_visible()
    expect(page.locator(".sitemenu")).to_be_hidden()
    expect(page.locator("#filter-fold > summary")).to_be_hidden()
    expect(page.locator("#range")).to_be_visible()
    expect(page.locator(".topbar > .nav a[aria-current=page]")).to_have_text("Events")

    # Narrowed and widened again, the filters come back even if they were folded meanwhile.
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("document.getElementById('filter-fold').open = false")
    page.set_viewport_size({"width": 1440, "height": 900})
    expect(page.locator("#range")).to_be_visible()


def test_the_theme_follows_the_system_until_a_choice_is_made_and_then_remembers_it(
    browser, server, person, screenshots
):
    page = open_page(browser, server, {**DESK, "color_scheme": "light"})
    assert background(page) == LIGHT_BACKGROUND
    assert page.evaluate("document.documentElement.dataset.theme") is None

    page.click(".usermenu > summary")
    expect(page.get_by_role("button", name="System")).to_have_attribute("aria-pressed", "true")
    assert fits(page), "the open user menu stays inside the window"
    page.get_by_role("button", name="Dark").click()
    expect(page.get_by_role("button", name="Dark")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert background(page) == DARK_BACKGROUND
    page.screenshot(path=str(screenshots / "theme-dark-chosen.png"))

    # Remembered on every page, and applied by the inline head script before the stylesheet
    # paints anything: it holds even when the deferred theme.js never arrives.
    page.route("**/static/js/theme*.js", lambda route: route.abort())
    page.goto(server.url + "/automations/")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert background(page) == DARK_BACKGROUND
    assert page.evaluate(
        """() => {
            const script = document.querySelector("head script");
            const sheet = document.querySelector("head link[rel=stylesheet]");
            return !!(script.compareDocumentPosition(sheet) & Node.DOCUMENT_POSITION_FOLLOWING);
        }"""
    )
    page.unroute("**/static/js/theme*.js")

    page.goto(server.url + "/webhooks/")
    page.click(".usermenu > summary")
    page.get_by_role("button", name="Light").click()
    assert background(page) == LIGHT_BACKGROUND
    page.emulate_media(color_scheme="dark")
    assert background(page) == LIGHT_BACKGROUND, "a choice outranks the system"
    page.get_by_role("button", name="System").click()
    assert page.evaluate("document.documentElement.dataset.theme") is None
    assert page.evaluate("localStorage.getItem('eventsite.theme')") is None
    assert background(page) == DARK_BACKGROUND


def test_every_page_links_an_svg_favicon_that_is_served(browser, server, person):
    page = open_page(browser, server, DESK)
    href = page.locator("head link[rel=icon]").get_attribute("href")
    assert page.locator("head link[rel=icon]").get_attribute("type") == "image/svg+xml"
    response = httpx.get(server.url + href)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.lstrip().startswith("<svg")


def test_keyboard_focus_is_visible_on_links_buttons_and_fields(browser, server, person):
    page = open_page(browser, server, DESK)
    page.goto(server.url + "/automations/")
    for _ in range(4):
        page.keyboard.press("Tab")
        outline = page.evaluate(
            """() => {
                const s = getComputedStyle(document.activeElement);
                return [document.activeElement.tagName, s.outlineStyle, parseFloat(s.outlineWidth)];
            }"""
        )
        assert outline[1] == "solid" and outline[2] >= 2, outline
