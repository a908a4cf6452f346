"""Saved views: named filter sets per person, listed in the feed, shareable by link."""

from __future__ import annotations

import pytest
from django.test import Client

from events.models import SavedView

pytestmark = pytest.mark.django_db


def test_saving_the_feeds_filters_keeps_only_filters_and_opens_them(logged_in_client, user):
    response = logged_in_client.post(
        "/views/",
        {
            "name": "Failed runs",
            "page": "/events/",
            "query": "event=prefect.flow-run.Failed&range=7d&after=TOKEN&view=x&q=",
        },
    )

    view = SavedView.objects.get()
    assert response.status_code == 302
    assert response["Location"] == "/events/?range=7d&event=prefect.flow-run.Failed"
    assert view.owner == user and view.name == "Failed runs"
    assert view.query == "range=7d&event=prefect.flow-run.Failed"


def test_saving_again_under_the_same_name_updates_the_view(logged_in_client):
    logged_in_client.post("/views/", {"name": "Mine", "page": "/events/", "query": "range=1h"})
    logged_in_client.post("/views/", {"name": "Mine", "page": "/events/", "query": "range=24h"})

    assert list(SavedView.objects.values_list("name", "query")) == [("Mine", "range=24h")]


def test_the_feed_lists_your_views_and_not_other_peoples(logged_in_client, user, django_user_model):
    other = django_user_model.objects.create_user("bob", "bob@example.com", "pw")
    SavedView.objects.create(owner=user, name="Mine", query="range=1h")
    SavedView.objects.create(owner=other, name="Bob's", query="range=7d")

    page = logged_in_client.get("/events/").content.decode()

    menu = page[page.index('id="views-menu"') : page.index('id="export-menu"')]
    assert "Views · 1" in menu
    assert '<a href="/events/?range=1h">Mine</a>' in menu
    assert "Bob" not in menu


def test_a_views_link_opens_it_for_anyone_signed_in(user, django_user_model):
    view = SavedView.objects.create(
        owner=user, name="Shared", query="resource=acme.*", page="/audit/"
    )
    colleague = Client()
    colleague.force_login(django_user_model.objects.create_user("bob", "bob@example.com", "pw"))

    opened = colleague.get(f"/views/{view.pk}/")
    anonymous = Client().get(f"/views/{view.pk}/")

    assert opened.status_code == 302 and opened["Location"] == "/audit/?resource=acme.*"
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")


def test_only_the_owner_deletes_a_view(logged_in_client, user, django_user_model):
    view = SavedView.objects.create(owner=user, name="Mine", query="")
    other = Client()
    other.force_login(django_user_model.objects.create_user("bob", "bob@example.com", "pw"))

    assert other.post(f"/views/{view.pk}/delete/").status_code == 404
    assert SavedView.objects.exists()
    response = logged_in_client.post(f"/views/{view.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/views/"
    assert not SavedView.objects.exists()


def test_a_view_without_a_name_or_for_another_page_is_refused_with_a_message(logged_in_client):
    nameless = logged_in_client.post("/views/", {"name": " ", "page": "/events/", "query": ""})
    elsewhere = logged_in_client.post(
        "/views/", {"name": "x", "page": "https://evil.example/", "query": ""}
    )

    assert nameless.status_code == 400 and "This field is required" in nameless.content.decode()
    assert elsewhere.status_code == 400 and "Select a valid choice" in elsewhere.content.decode()
    assert not SavedView.objects.exists()


def test_the_views_page_lists_views_with_their_filters_and_share_links(logged_in_client, user):
    view = SavedView.objects.create(
        owner=user, name="<b>Failed</b>", query="event=a.failed&range=7d"
    )

    page = logged_in_client.get("/views/").content.decode()

    assert "&lt;b&gt;Failed&lt;/b&gt;" in page
    assert '<span class="chip-key">event</span><code>a.failed</code>' in page
    assert f'data-copy="http://testserver/views/{view.pk}/"' in page
