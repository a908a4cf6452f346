"""API token pages and login throttling."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from events import audit
from events.models import ApiToken, Event, LoginFailure

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


def login(client, username="alice", password=PASSWORD, ip="10.0.0.1", url="/accounts/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_failures_lock_the_account_with_a_clear_message(client, user):
    for _ in range(5):
        assert login(client, password="nope").status_code == 200

    response = login(client)

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "Too many failed logins for this account. Try again in 15 minutes" in (
        response.content.decode()
    )
    throttled = Event.objects.filter(event=audit.USER_LOGIN_FAILED, payload__reason="throttled")
    assert throttled.count() == 1


def test_guessing_from_elsewhere_does_not_lock_the_owner_out(client, user):
    for attacker in ("10.6.6.1", "10.6.6.2", "10.6.6.3"):
        for _ in range(5):
            login(client, password="nope", ip=attacker)
        assert "Too many failed logins" in login(client, ip=attacker).content.decode()

    response = login(client, ip="10.0.0.7")  # the owner, from their own address

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_an_account_guessed_from_many_addresses_is_slowed_not_locked(client, user, settings):
    settings.EVENTSITE_LOGIN_FAILURES_PER_IP = 6
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for i in range(6):
            login(client, password="nope", ip=f"10.7.0.{i}")

        slowed = login(client, ip="10.0.0.7")
        assert "one attempt every 5 seconds" in slowed.content.decode()
        assert "_auth_user_id" not in client.session

        clock.shift(timedelta(seconds=6))
        assert login(client, ip="10.0.0.7").status_code == 302


def test_the_lock_ends_when_the_window_has_passed(client, user):
    for _ in range(5):
        login(client, password="nope")

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        response = login(client)

    assert response.status_code == 302
    assert not LoginFailure.objects.filter(username="alice").exists()


def test_a_successful_login_clears_the_account_count(client, user):
    for _ in range(4):
        login(client, password="nope")
    assert login(client).status_code == 302
    client.logout()

    for _ in range(4):
        login(client, password="nope")

    assert login(client).status_code == 302


def test_many_failures_from_one_address_lock_that_address(client, settings, django_user_model):
    settings.EVENTSITE_LOGIN_FAILURES_PER_IP = 3
    django_user_model.objects.create_user("bob", password=PASSWORD)
    for name in ["x", "y", "z"]:
        login(client, username=name, password="nope", ip="10.0.0.9")

    blocked = login(client, username="bob", ip="10.0.0.9")
    elsewhere = login(client, username="bob", ip="10.0.0.10")

    assert "Too many failed logins from your network address" in blocked.content.decode()
    assert elsewhere.status_code == 302


def test_the_admin_login_is_throttled_too(client, admin_user):
    for _ in range(5):
        login(client, username="admin", password="nope", url="/admin/login/")

    response = login(client, username="admin", password="password", url="/admin/login/")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_token_page_shows_last_used_and_never_the_secret_again(logged_in_client, user):
    token, secret = ApiToken.issue(user, name="ci")
    ApiToken.objects.filter(pk=token.pk).update(last_used=timezone.now() - timedelta(hours=2))

    html = logged_in_client.get("/account/tokens/").content.decode()

    assert "ci" in html and token.prefix in html
    assert "2\xa0hours ago" in html
    assert secret not in html


def test_a_new_token_is_shown_once_and_works(logged_in_client, client):
    response = logged_in_client.post("/account/tokens/", {"name": "laptop"})

    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert logged_in_client.get("/account/tokens/").content.decode().count(secret) == 0
    assert ApiToken.authenticate(secret).name == "laptop"


def test_a_token_name_is_required(logged_in_client):
    response = logged_in_client.post("/account/tokens/", {"name": ""})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_name_error"' in html
    assert re.search(r'<input[^>]*aria-describedby="[^"]*id_name_error"', html)
    assert not ApiToken.objects.exists()


def test_a_person_cannot_revoke_someone_elses_token(logged_in_client, django_user_model):
    other = django_user_model.objects.create_user("bob", password=PASSWORD)
    token, _ = ApiToken.issue(other, name="bobs")

    response = logged_in_client.post(f"/account/tokens/{token.pk}/revoke/")

    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked is None


def test_revoking_needs_post_and_a_csrf_token(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token, _ = ApiToken.issue(user, name="t")

    assert client.get(f"/account/tokens/{token.pk}/revoke/").status_code == 405
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 403
    token.refresh_from_db()
    assert token.revoked is None
