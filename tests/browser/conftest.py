from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="module")
def playwright():
    """Playwright's sync API, for one module at a time.

    It runs an event loop in this thread while it lives, so it must not outlive the browser
    tests (later tests' async_to_sync would refuse to run). Meanwhile the tests' own ORM calls are
    still plain synchronous code: Django's async-safety guard must not mistake them for async.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "Browser tests need Debian's chromium: apt-get install -y chromium (make test does)"
        )
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def private_server(live_server_env):
    """A live server of the module's own that may call loopback receivers (eventsite refuses
    private addresses by default)."""
    from tests.conftest import LiveServer

    server = LiveServer({**live_server_env, "EVENTSITE_ACTIONS_ALLOW_PRIVATE": "1"})
    server.start()
    yield server
    server.stop()


@contextmanager
def signed_in_page(browser, server, user, *, timeout_ms: float | None = None) -> Iterator:
    """A desktop-sized page of `server` with `user` signed in (a session made by Django's test
    client, handed to the browser as its cookie)."""
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": server.url}]
    )
    try:
        page = context.new_page()
        if timeout_ms is not None:
            page.set_default_timeout(timeout_ms)
        yield page
    finally:
        context.close()
