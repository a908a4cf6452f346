"""The feed's live state tells the truth, in a real browser against a real `manage.py serve`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from events.ingest import ingest
from tests.browser.test_feed_browser import log_in, person, post_events, seed  # noqa: F401
from tests.factories import event_data

pytestmark = [pytest.mark.browser, pytest.mark.live]

RECORD_STATES = """() => {
  window.liveStates = [];
  const live = document.getElementById("live");
  new MutationObserver(() => window.liveStates.push(live.dataset.state))
    .observe(live, { attributes: true, attributeFilter: ["data-state"] });
}"""


@pytest.fixture
def page(browser, server, person):  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_a_lost_feed_shows_lost_then_reconnecting_then_live_and_catches_up(
    page: Page,
    server,
    person,  # noqa: F811
):
    seed(server, person)
    log_in(page, server.url)
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "live")
    total = int(page.locator(".summary .total b").inner_text().replace(",", ""))
    page.evaluate(RECORD_STATES)

    server.stop()
    expect(live).to_have_attribute("data-state", "lost")
    expect(live).to_contain_text("connection lost")
    # Stored while the page had no server to listen to.
    missed = event_data("acme.order.created", "acme.order.missed")
    assert ingest([missed], source="test").ok
    server.start()

    expect(live).to_have_attribute("data-state", "live", timeout=20_000)
    expect(page.locator(f"#ev-{missed['id']}")).to_be_visible()
    expect(page.locator(".summary .total b")).to_have_text(f"{total + 1:,}")
    states = page.evaluate("window.liveStates")
    assert states[0] == "lost"
    assert "reconnecting" in states
    assert states[-1] == "live"
    assert states.index("reconnecting") < len(states) - 1


def test_a_window_that_ended_in_the_past_shows_no_live_state(
    page: Page,
    server,
    person,  # noqa: F811
):
    seed(server, person)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    now = datetime.now(UTC)
    window = {"since": (now - timedelta(hours=2)).isoformat(), "until": now.isoformat()}
    log_in(page, server.url, "/events/?" + urlencode(window))

    expect(page.locator("article.ev").first).to_be_visible()
    expect(page.locator("#live")).to_have_count(0)
    expect(page.locator("#pause")).to_have_count(0)
    assert not [url for url in sockets if "/ws/feed/" in url]


def test_the_total_and_the_current_bar_follow_live_rows(
    page: Page,
    server,
    person,  # noqa: F811
):
    seed(server, person)
    log_in(page, server.url)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    total = int(page.locator(".summary .total b").inner_text().replace(",", ""))
    current = """() => {
      const bars = [...document.querySelectorAll("svg.histogram a[data-start]")];
      const now = Date.now();
      const bar = bars.find(b => Date.parse(b.dataset.start) <= now && now < Date.parse(b.dataset.end));
      return bar ? bar.dataset.counts.split(",").map(Number).reduce((a, b) => a + b, 0) : 0;
    }"""
    # Not within a few seconds of the current bar's end: the events must land in the bar read.
    left = page.evaluate(
        """() => {
          const now = Date.now();
          const bar = [...document.querySelectorAll("svg.histogram a[data-start]")]
            .find(b => Date.parse(b.dataset.start) <= now && now < Date.parse(b.dataset.end));
          return bar ? Date.parse(bar.dataset.end) - now : 0;
        }"""
    )
    if left < 5000:
        time.sleep(left / 1000 + 1)
        page.reload()
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        total = int(page.locator(".summary .total b").inner_text().replace(",", ""))
    before = page.evaluate(current)

    post_events(
        server,
        person,
        *[
            event_data("acme.order.created", f"acme.order.live{i}", ago=timedelta(0))
            for i in range(3)
        ],
    )

    expect(page.locator(".summary .total b")).to_have_text(f"{total + 3:,}")
    page.wait_for_function(f"({current})() === {before + 3}")
    heights = page.evaluate(
        """() => [...document.querySelectorAll("svg.histogram rect.seg")]
                 .map(r => Number(r.getAttribute("height")))"""
    )
    assert max(heights) <= 38.0 + 1e-6
