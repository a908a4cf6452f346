import base64

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from events.models import ApiToken

pytestmark = pytest.mark.django_db

FILTER = "/api/events/filter"


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_a_bearer_token_is_accepted(token):
    assert client_with(f"Bearer {token}").post(FILTER, {}, format="json").status_code == 200


def test_a_lowercase_bearer_scheme_is_accepted(token):
    assert client_with(f"bearer {token}").post(FILTER, {}, format="json").status_code == 200


def test_basic_auth_with_any_name_and_the_token_as_password_is_accepted(token):
    header = "Basic " + base64.b64encode(f"eventsite:{token}".encode()).decode()

    assert client_with(header).post(FILTER, {}, format="json").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer nope",
        "Basic !!!",
        "Basic " + base64.b64encode(b"eventsite:nope").decode(),
        "Token x",
    ],
)
def test_missing_or_wrong_credentials_are_a_401_with_a_json_detail(header):
    response = client_with(header).post(FILTER, {}, format="json")

    assert response.status_code == 401
    assert response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_a_401(user):
    api_token, secret = ApiToken.issue(user, name="old")
    api_token.revoke()

    assert client_with(f"Bearer {secret}").post(FILTER, {}, format="json").status_code == 401


def test_a_token_of_an_inactive_user_is_a_401(user, token):
    user.is_active = False
    user.save()

    assert client_with(f"Bearer {token}").post(FILTER, {}, format="json").status_code == 401


def test_tokens_are_stored_hashed_and_record_when_they_were_used(user):
    api_token, secret = ApiToken.issue(user, name="ci")
    assert secret not in (api_token.digest, api_token.prefix)
    assert api_token.last_used is None

    client_with(f"Bearer {secret}").post(FILTER, {}, format="json")

    api_token.refresh_from_db()
    assert api_token.last_used is not None


@pytest.mark.parametrize(
    "path", ["/api/events", "/api/events/filter/next?page-token=x", "/api/schema/"]
)
def test_every_api_endpoint_but_health_and_version_needs_a_token(path):
    client = APIClient()
    response = client.post(path, [], format="json") if path == "/api/events" else client.get(path)

    assert response.status_code == 401


def test_health_and_version_answer_without_a_token():
    client = APIClient()

    assert client.get("/api/health").json() is True
    assert client.get("/api/admin/version").json() == "3.9.1"


def test_create_api_token_prints_a_working_token_as_its_last_line(user, capsys):
    call_command("create_api_token", user.username, "--name", "deploy")

    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiToken.authenticate(secret).name == "deploy"


def test_create_api_token_for_an_unknown_user_is_a_clear_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")


def test_the_api_docs_page_and_schema_are_served_to_a_logged_in_user(logged_in_client):
    assert logged_in_client.get("/api/schema/").status_code == 200
    page = logged_in_client.get("/api/docs/")
    assert page.status_code == 200
    assert b"cdn" not in page.content.lower()
