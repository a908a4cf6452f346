"""Error pages live inside the site: its layout and navigation, words that say what happened,
and a way back. 500 and the CSRF failure page render without a request, so the layout must too."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.template import Context, Template
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.views import defaults
from playwright.sync_api import expect

from tests.browser.test_feed_browser import PASSWORD


@pytest.mark.django_db
def test_a_missing_event_says_how_long_events_are_kept_and_links_back_to_the_feed(
    logged_in_client, settings
):
    settings.EVENTSITE_EVENT_RETENTION = timedelta(hours=36)
    missing = uuid.uuid4()

    response = logged_in_client.get(f"/events/{missing}/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "No such event" in html and str(missing) in html
    assert "Events are kept for 36 hours" in html
    assert 'href="/events/"' in html and 'class="nav"' in html  # the site's navigation


@pytest.mark.django_db
def test_an_unknown_page_is_a_404_inside_the_site(logged_in_client):
    response = logged_in_client.get("/no/such/page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "/no/such/page/" in html
    assert 'class="topbar"' in html and "Back to the events" in html


@pytest.mark.django_db
def test_403_uses_the_layout_with_the_user_menu(user):
    request = RequestFactory().get("/somewhere/")
    request.user = user

    response = defaults.permission_denied(request, PermissionDenied("no"))

    assert response.status_code == 403
    html = response.content.decode()
    assert "You may not do that" in html and 'class="nav"' in html and user.username in html


def test_500_renders_with_an_empty_context():
    response = defaults.server_error(RequestFactory().get("/boom/"))

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html
    assert 'class="nav"' in html and 'rel="icon"' in html and "Back to the events" in html
    assert "hx-headers" not in html  # no CSRF token to send without a request
    # The empty context is really empty: rendering the bare template works too.
    assert "Something went wrong" in render_to_string("500.html")


@pytest.mark.parametrize(
    "retention, expected",
    [
        (timedelta(days=7), "7 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=36), "36 hours"),
        (timedelta(minutes=90), "90 minutes"),
        (timedelta(seconds=45), "45 seconds"),
    ],
)
def test_retention_reads_as_words(settings, retention, expected):
    settings.EVENTSITE_EVENT_RETENTION = retention
    rendered = Template("{% load events_extras %}{% event_retention %}").render(Context())
    assert rendered == expected


def test_a_long_id_cut_in_the_middle_keeps_every_character_and_escapes_them():
    template = Template("{% load events_extras %}{% middle value %}")
    evil = "<script>alert(1)</script>" + "x" * 20

    html = template.render(Context({"value": evil}))

    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'class="mid-head"' in html and 'class="mid-tail">xxxxxxxxxx<' in html
    short = template.render(Context({"value": "acme.1"}))
    assert short == '<span class="mid">acme.1</span>'


@pytest.mark.browser
@pytest.mark.live
def test_an_expired_form_shows_the_sites_403_page_with_navigation(
    browser, server, django_user_model, screenshots
):
    django_user_model.objects.create_user("pat", "pat@example.com", PASSWORD)
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(server.url + "/accounts/login/")
    page.fill("#id_username", "pat")
    page.fill("#id_password", PASSWORD)
    page.evaluate("document.querySelector('[name=csrfmiddlewaretoken]').value = 'x'.repeat(64)")
    page.click("form button[type=submit]")

    expect(page.locator("h1")).to_have_text("This form has expired")
    expect(page.locator(".sitemenu > summary")).to_be_visible()
    expect(page.get_by_role("link", name="Back to the events")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(screenshots / "csrf-403-phone.png"), full_page=True)
    assert re.search(r"/accounts/login/", page.url)
    page.context.close()
