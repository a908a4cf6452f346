"""First run on a fresh database: several real `serve` processes starting at once.

An operator starts every web process of a new deployment together (systemd does). Exactly one
of them migrates and creates the first admin; the others wait for it and start serving. Runs on
a fresh SQLite file, and on a fresh PostgreSQL database when the suite runs on PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.conftest import ROOT, free_port
from tests.eventsite.helpers import fresh_postgresql_database

pytestmark = pytest.mark.live

PROCESSES = 3


def start_all(database_url: str, data_dir: Path) -> list[tuple[subprocess.Popen, int, Path]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EVENTSITE_DATABASE_URL": database_url,
        "EVENTSITE_SECRET_KEY": "one-key-for-every-process-of-this-deployment-0123456789",
        "EVENTSITE_DATA_DIR": str(data_dir),
        "EVENTSITE_LOG_LEVEL": "WARNING",
    }
    started = []
    for i in range(PROCESSES):
        port = free_port()
        out = data_dir / f"serve-{i}.out"
        with out.open("w") as stdout:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--migrate",
                    "--no-engine",
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=env,
                stdout=stdout,
                stderr=subprocess.STDOUT,
            )
        started.append((process, port, out))
    return started


def wait_healthy(started, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(started)
    while waiting:
        process, port, out = waiting[0]
        if process.poll() is not None:
            pytest.fail(f"serve on port {port} exited:\n{out.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"serve on port {port} did not answer in time"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                waiting.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def stop_all(started) -> None:
    for process, _, _ in started:
        process.terminate()
    for process, _, _ in started:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_one_first_run(started, query) -> None:
    outputs = [out.read_text() for _, _, out in started]
    assert sum("First run: created an admin account" in o for o in outputs) == 1, outputs
    assert all("Error" not in o and "Traceback" not in o for o in outputs), outputs
    assert query("SELECT username FROM auth_user") == [("admin",)]
    assert query("SELECT count(*) FROM events_apitoken") == [(1,)]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite pass runs this one")
def test_serve_processes_starting_together_on_a_fresh_sqlite_file_set_up_once(tmp_path):
    database = tmp_path / "fresh.sqlite3"
    started = start_all(f"sqlite:///{database}", tmp_path)
    try:
        wait_healthy(started)
    finally:
        stop_all(started)

    def query(sql):
        with sqlite3.connect(database) as db:
            return db.execute(sql).fetchall()

    assert_one_first_run(started, query)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the suite runs on SQLite")
def test_serve_processes_starting_together_on_a_fresh_postgresql_database_set_up_once(tmp_path):
    with fresh_postgresql_database("first_run") as (url, connect):
        started = start_all(url, tmp_path)
        try:
            wait_healthy(started)
        finally:
            stop_all(started)

        def query(sql):
            with connect() as db:
                return [tuple(row) for row in db.execute(sql).fetchall()]

        assert_one_first_run(started, query)
