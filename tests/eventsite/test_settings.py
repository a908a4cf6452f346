"""Settings a deployment derives from its environment, read by fresh processes as operators run them.

Settings are read once per process, so each case starts `manage.py` (or Python) with its own
environment, exactly as systemd would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from tests.conftest import ROOT
from tests.factories import event_data

DEPLOYMENT = {
    "EVENTSITE_DEBUG": "0",
    "EVENTSITE_SECRET_KEY": "a-long-random-value-for-these-tests-only-0123456789abcdefghij",
    "EVENTSITE_PUBLIC_URL": "https://events.example.com",
}
SHOWN = [
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "CACHES",
]


def environment(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSITE_")}
    env["DJANGO_SETTINGS_MODULE"] = "eventsite.settings"
    env["EVENTSITE_DATA_DIR"] = os.environ.get("EVENTSITE_DATA_DIR", str(ROOT / "var"))
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


def manage(*args: str, **env: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_of(**env: str | None) -> dict:
    script = (
        "import json; import django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{k: getattr(settings, k) for k in {SHOWN!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_public_url_sets_hosts_origins_cookies_proxy_trust_and_hsts():
    got = settings_of(**DEPLOYMENT)

    assert "events.example.com" in got["ALLOWED_HOSTS"]
    assert "testserver" not in got["ALLOWED_HOSTS"]
    assert got["CSRF_TRUSTED_ORIGINS"] == ["https://events.example.com"]
    assert got["SESSION_COOKIE_SECURE"] and got["CSRF_COOKIE_SECURE"]
    assert got["SESSION_COOKIE_HTTPONLY"] and got["CSRF_COOKIE_HTTPONLY"]
    assert got["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert got["SECURE_SSL_REDIRECT"] is True
    assert got["SECURE_HSTS_SECONDS"] >= 365 * 86400


def test_without_a_public_url_no_proxy_header_is_trusted_and_cookies_work_over_http():
    got = settings_of()

    assert got["SECURE_PROXY_SSL_HEADER"] is None
    assert got["CSRF_TRUSTED_ORIGINS"] == []
    assert not got["SESSION_COOKIE_SECURE"]
    assert got["SECURE_HSTS_SECONDS"] == 0


def test_a_public_url_with_a_port_is_the_trusted_origin_with_that_port():
    got = settings_of(EVENTSITE_PUBLIC_URL="https://events.example.com:8443/")

    assert got["CSRF_TRUSTED_ORIGINS"] == ["https://events.example.com:8443"]
    assert "events.example.com" in got["ALLOWED_HOSTS"]


def test_with_a_redis_url_the_cache_is_redis_shared_by_every_process():
    got = settings_of(EVENTSITE_REDIS_URL="redis://127.0.0.1:6379/9")

    assert got["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert got["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:6379/9"


def test_a_public_url_that_is_not_a_url_stops_with_a_message():
    result = manage("check", EVENTSITE_PUBLIC_URL="events.example.com")

    assert result.returncode != 0
    assert "EVENTSITE_PUBLIC_URL='events.example.com' is not a URL like https://" in result.stderr


def test_check_deploy_is_clean_with_debug_off_a_secret_key_and_a_public_url():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **DEPLOYMENT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_shared_database_without_a_secret_key_refuses_to_start_and_says_why(tmp_path):
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"

    result = manage("serve", "--port", "9", EVENTSITE_DATABASE_URL=database)

    assert result.returncode == 1
    assert "EVENTSITE_DATABASE_URL is set but EVENTSITE_SECRET_KEY is not" in result.stderr
    assert "must sign sessions, CSRF tokens and page tokens with the same key" in result.stderr
    assert "serving on" not in result.stdout


@pytest.mark.django_db
def test_a_forwarded_proto_is_not_believed_without_a_public_url(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    stored = client.post("/api/events", [event_data(), event_data()], format="json")
    assert stored.status_code == 204

    response = client.post(
        "/api/events/filter", {"limit": 1}, format="json", HTTP_X_FORWARDED_PROTO="https"
    )

    assert response.status_code == 200
    assert response.json()["next_page"].startswith("http://testserver/api/events/filter/next")
