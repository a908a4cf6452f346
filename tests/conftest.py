from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError, connection, connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from rest_framework.test import APIClient

from automations.models import EngineCursor
from bench.common import free_port
from events.models import ApiToken

ROOT = Path(__file__).resolve().parent.parent


def store_in_another_process(env: dict[str, str], name: str, resource_id: str) -> None:
    """Store one event from another Python process (its own Django and database connection), as
    a second `serve` or a script would."""
    script = (
        "import django; django.setup()\n"
        "from events.ingest import ingest\n"
        "from tests.factories import event_data\n"
        f"assert ingest([event_data({name!r}, {resource_id!r})], source='test').ok\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session", autouse=True)
def pool_closed_before_teardown(django_db_setup, django_db_blocker):
    """PostgreSQL: no session left on the test database when it is dropped (this fixture's
    teardown runs first, as it needs `django_db_setup`), which otherwise warned that it was
    being accessed by other users. Left were the pool's idle connections and the connections
    other threads of the process still held (the wakeup sender's `NOTIFY`, the SDK's and the
    request threads', asgiref's executors'): those are ended by the server, then the pool is
    closed."""
    yield
    with django_db_blocker.unblock():
        for alias in connections:
            wrapper = connections[alias]
            if wrapper.vendor != "postgresql":
                continue
            with wrapper.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            wrapper.close()
            wrapper.close_pool()


@pytest.fixture(autouse=True)
def engines_of_their_own(monkeypatch):
    """The engines of the test process (those a test builds, and the explain page's reading of
    "the" engine's cursor) use the cursor row "tests", not the session server's (`server`
    below). That server's engine writes its row when it likes: after the flush that ends a
    committing test (it goes on from where it was), and on PostgreSQL while a test runs. An
    engine sharing the row would start at the server's real-time cursor, past the test's clock,
    and read nothing. (Seen on 2 workers, where any file may follow a server test.)"""
    monkeypatch.setattr(EngineCursor, "DEFAULT", "tests")


@pytest.fixture
def user(django_user_model):
    """The suite's signed-in person: an admin (staff), who may do everything; the role tests
    (tests/events/accounts/test_roles.py) make viewers and editors of their own."""
    return django_user_model.objects.create_user(
        "alice", "alice@example.com", "correct horse battery", is_staff=True
    )


@pytest.fixture
def token(user) -> str:
    """A fresh API token secret for `user`."""
    _, secret = ApiToken.issue(user, name="tests")
    return secret


@pytest.fixture
def api_client(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def logged_in_client(client, user):
    client.force_login(user)
    return client


def _database_url() -> str:
    """The URL of the test database, for a server process that must see the tests' data."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgresql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class LiveServer:
    """`manage.py serve` in a subprocess on a loopback port, against the test database."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.args = args
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--port",
                str(self.port),
                "--no-first-run",
                *self.args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not answer /api/health within 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def live_server_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    with django_db_blocker.unblock():
        url = _database_url()
    # The real settings, with the suite's fast password hasher (tests/settings.py), so that users
    # the tests create can log in.
    return {
        **os.environ,
        "EVENTSITE_DATABASE_URL": url,
        "EVENTSITE_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }


@receiver(connection_created)
def _the_suite_is_not_the_deadlocks_victim(sender, connection, **kwargs) -> None:
    """A test's teardown flushes the database (one TRUNCATE of every table) while the live
    server's engine may be writing: PostgreSQL ends such a deadlock by failing the transaction
    of whichever backend checks first, after `deadlock_timeout`. The suite's own connections
    wait longer, so the server's write fails (and is retried by its engine), not the flush that
    the next test needs (it failed once in CI, and the next test found the last one's user)."""
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET deadlock_timeout = '10s'")
        except DatabaseError:  # not a superuser: PostgreSQL's default, as before
            pass


@pytest.fixture(scope="session")
def _session_server(live_server_env):
    server = LiveServer(live_server_env)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(_session_server, transactional_db) -> LiveServer:
    """A running eventsite sharing the test database (tests using it commit their data) and its
    cache (emptied here, so no test sees counts cached from another one's data)."""
    if _session_server.process.poll() is not None:
        _session_server.start()
    empty_cache()
    return _session_server


def empty_cache() -> None:
    """Forget what this suite's processes cached. On Redis only the suite's own keys go: the
    database also holds the channel layer and the service locks of running servers."""
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        for key in client.scan_iter(match=f"{cache.key_prefix}:*", count=1000):
            client.delete(key)
    else:
        cache.clear()
