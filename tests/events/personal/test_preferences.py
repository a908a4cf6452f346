"""Display preferences: time zone (browser or UTC) and relative times, remembered per person."""

from __future__ import annotations

import pytest

from events.models import Preference

pytestmark = pytest.mark.django_db


def test_pages_default_to_the_browsers_time_zone_without_relative_times(logged_in_client):
    page = logged_in_client.get("/events/").content.decode()

    assert '<html lang="en" data-tz="browser" data-relative="off">' in page
    assert not Preference.objects.exists()  # nothing stored until a choice is made


def test_a_choice_is_saved_for_the_person_and_applied_to_every_page(logged_in_client, user):
    response = logged_in_client.post(
        "/account/preferences/", {"time_zone": "utc", "relative_times": "on", "next": "/webhooks/"}
    )

    assert response.status_code == 302 and response["Location"] == "/webhooks/"
    assert Preference.objects.get(user=user).time_zone == "utc"
    page = logged_in_client.get("/automations/").content.decode()
    assert '<html lang="en" data-tz="utc" data-relative="on">' in page
    assert 'name="time_zone" value="utc" checked' in page


def test_htmx_saves_quietly_and_a_foreign_next_is_ignored(logged_in_client, user):
    quiet = logged_in_client.post(
        "/account/preferences/", {"time_zone": "browser"}, HTTP_HX_REQUEST="true"
    )
    away = logged_in_client.post(
        "/account/preferences/", {"time_zone": "utc", "next": "https://evil.example/"}
    )

    assert quiet.status_code == 204
    assert away.status_code == 302 and away["Location"] == "/events/"


def test_a_bad_time_zone_is_a_400_that_says_why(logged_in_client):
    response = logged_in_client.post("/account/preferences/", {"time_zone": "Mars/Olympus"})

    assert response.status_code == 400
    assert "time_zone" in response.content.decode()


def test_preferences_need_a_login_and_a_post(client, logged_in_client):
    assert client.post("/account/preferences/", {"time_zone": "utc"}).status_code == 302
    assert logged_in_client.get("/account/preferences/").status_code == 405
