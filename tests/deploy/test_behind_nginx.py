"""A real deployment, as `deploy/` ships it: Debian's nginx terminating TLS in front of two web
processes (`serve --no-engine`) and one engine (`run_engine`), on PostgreSQL + Redis.

The deployment gets a database of its own, empty, and all its processes start at once: the web
processes set it up (one of them migrates and prints the first admin and API token, which the
tests then use, as an operator would).

Everything comes from the shipped files: the processes are the `ExecStart=` of the systemd units,
their environment is `deploy/eventsite.env.example` with this test's values filled in, and
nginx runs the site `deploy/render-nginx` makes from the template. Only the certificate (self-
signed, made here with openssl) and nginx's main file (Debian's /etc/nginx/nginx.conf, reduced
to what a private prefix needs) are the test's own.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, playwright  # noqa: F401
from tests.conftest import ROOT, free_port
from tests.eventsite.helpers import fresh_postgresql_database, lock_holding_processes
from tests.factories import event_data

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.deploy]

DEPLOY = ROOT / "deploy"
HOST = "eventsite.test"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> object:
    """Poll `condition` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def unit_command(unit: str, instance: str = "") -> list[str]:
    """The unit's ExecStart, with this checkout and interpreter in place of /opt/eventsite."""
    lines = (DEPLOY / "systemd" / unit).read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if "=" in line and line[0].isalpha())
    argv = shlex.split(values["ExecStart"].replace("%i", instance))
    assert argv[0] == values["WorkingDirectory"] + "/.venv/bin/python", argv
    assert values["EnvironmentFile"] == "/etc/eventsite/eventsite.env"
    return [sys.executable, *argv[1:]]


def env_file(values: dict[str, str]) -> dict[str, str]:
    """deploy/eventsite.env.example with `values` filled in; every one of them must be in it."""
    example = {}
    for line in (DEPLOY / "eventsite.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            example[name.strip()] = value.strip()
    missing = set(values) - set(example)
    assert not missing, f"the example environment file lacks {sorted(missing)}"
    return {**example, **values}


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.popen = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text()[-3000:]

    def wait_healthy(self) -> None:
        """Wait until the backend answers its health check over loopback http."""

        def healthy() -> bool:
            if self.popen.poll() is not None:
                pytest.fail(f"{self.name} exited\n{self.tail()}")
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/api/health", timeout=2)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        wait_for(healthy, f"{self.name} to answer", timeout=120)


@dataclass
class Deployment:
    public_url: str
    https_port: int
    http_port: int
    web: list[Process]
    engine: Process
    nginx: Process
    connect: Callable  # opens a connection to the deployment's database
    password: str = ""  # the first admin's, as the first run printed them
    token: str = ""

    def client(self, token: str | None = None) -> httpx.Client:
        """An API client that reaches nginx the way people do: https, Host eventsite.test."""
        headers = {"Host": f"{HOST}:{self.https_port}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.https_port}",
            headers=headers,
            verify=False,
            timeout=30,
        )

    def logs(self) -> str:
        return "\n".join(p.tail() for p in [*self.web, self.engine, self.nginx])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def nginx_main_conf(prefix: Path, site: Path) -> Path:
    """Debian's nginx.conf, reduced to a private prefix (pid, logs, temp files) and our site."""
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / temp).mkdir()
        (prefix / temp).chmod(0o777)  # worker processes run unprivileged
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""
    )
    return conf


def first_admin(web: list[Process]) -> tuple[str, str]:
    """The first admin's password and API token, printed once by one of the web processes."""
    printed = [p.log.read_text() for p in web if "First run:" in p.log.read_text()]
    assert len(printed) == 1, "exactly one web process must set up the empty database"
    password = re.search(r"password: (\S+)", printed[0]).group(1)
    token = re.search(r"API token: (\S+)", printed[0]).group(1)
    return password, token


@pytest.fixture(scope="module")
def deployment(django_db_blocker, tmp_path_factory):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip(
            "the deployment test runs on PostgreSQL + Redis (set EVENTSITE_DATABASE_URL and "
            "EVENTSITE_REDIS_URL; .ci/run's PostgreSQL pass does)"
        )
    if NGINX is None:
        pytest.skip("nginx is not installed: apt-get install nginx (make test does, as root)")
    with django_db_blocker.unblock(), fresh_postgresql_database("nginx") as (url, connect):
        yield from run_deployment(url, connect, tmp_path_factory.mktemp("deployment"))


def run_deployment(database_url: str, connect: Callable, directory: Path):
    https_port, http_port = free_port(), free_port()
    public_url = f"https://{HOST}:{https_port}"
    web_ports = [free_port(), free_port()]

    environment = env_file(
        {
            "EVENTSITE_PUBLIC_URL": public_url,
            "EVENTSITE_DATABASE_URL": database_url,
            "EVENTSITE_REDIS_URL": settings.REDIS_URL,
            "EVENTSITE_SECRET_KEY": secrets.token_urlsafe(50),
            "EVENTSITE_DATA_DIR": str(directory / "data"),
        }
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSITE_")}
    env = {
        **base,
        **environment,
        # The suite's settings (a fast password hasher) and its cache prefix; a standby takes
        # over a once-per-deployment service within half a second.
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        settings.CACHE_PREFIX_VARIABLE: os.environ.get(settings.CACHE_PREFIX_VARIABLE, "deploy"),
        "EVENTSITE_SERVICE_LOCK_POLL": "0.5s",
    }
    web = [
        Process(
            f"web@{port}",
            unit_command("eventsite-web@.service", str(port)),
            env,
            directory / f"web-{port}.log",
            port=port,
        )
        for port in web_ports
    ]
    engine = Process(
        "engine", unit_command("eventsite-engine.service"), env, directory / "engine.log"
    )

    cert, key = make_certificate(directory)
    rendered = subprocess.run(
        [str(DEPLOY / "render-nginx")],
        env={
            **base,
            **environment,
            "EVENTSITE_WEB_PORTS": " ".join(map(str, web_ports)),
            "EVENTSITE_HTTP_PORT": str(http_port),
            "EVENTSITE_TLS_CERTIFICATE": str(cert),
            "EVENTSITE_TLS_CERTIFICATE_KEY": str(key),
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    site = directory / "eventsite.conf"
    site.write_text(rendered)
    prefix = directory / "nginx"
    prefix.mkdir()
    conf = nginx_main_conf(prefix, site)
    nginx_args = [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    checked = subprocess.run([*nginx_args, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + rendered
    nginx = Process("nginx", [*nginx_args, "-g", "daemon off;"], env, prefix / "stdout.log")

    deployment = Deployment(public_url, https_port, http_port, web, engine, nginx, connect)
    try:
        # Everything at once, as systemd starts a new deployment's units.
        for process in [*web, engine, nginx]:
            process.start()
        for process in web:
            process.wait_healthy()
        deployment.password, deployment.token = first_admin(web)

        def nginx_answers() -> bool:
            try:
                with deployment.client() as client:
                    return client.get("/api/health").json() is True
            except httpx.HTTPError:
                return False

        wait_for(nginx_answers, "nginx to answer over https")
        yield deployment
    finally:
        for process in [nginx, engine, *web]:
            process.stop()


@pytest.fixture(scope="module")
def browser(playwright, deployment):  # noqa: F811 - the browser suite's Playwright fixture
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"],
    )
    yield browser
    browser.close()


def post_to_backend(deployment: Deployment, process: Process, event: dict) -> None:
    """POST an event to one web process, as nginx forwards it (https, the public host)."""
    response = httpx.post(
        f"http://127.0.0.1:{process.port}/api/events",
        json=[event],
        headers={
            "Host": f"{HOST}:{deployment.https_port}",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.9",
            "Authorization": f"Bearer {deployment.token}",
        },
    )
    assert response.status_code == 204, response.text


def test_a_browser_logs_in_through_nginx_and_sees_events_posted_to_either_web_process_live(
    deployment, browser
):
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(deployment.public_url + "/events/")
        expect(page).to_have_url(re.compile(r"/accounts/login/"))
        page.fill("#id_username", "admin")
        page.fill("#id_password", deployment.password)
        page.click("button[type=submit]")  # a POST with CSRF, checked against the public origin
        expect(page).to_have_url(deployment.public_url + "/events/")

        cookies = {c["name"]: c for c in context.cookies(deployment.public_url)}
        for name in ("sessionid", "csrftoken"):
            assert cookies[name]["secure"] and cookies[name]["httpOnly"], cookies[name]

        # The feed's socket goes through nginx (wss://) to one of the two web processes; an
        # event posted to either process reaches it live, through Redis.
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        posted = []
        for process in deployment.web:
            event = event_data("deploy.live.seen", f"deploy.via.{process.port}")
            post_to_backend(deployment, process, event)
            posted.append(event["id"])
        for event_id in posted:
            expect(page.locator(f"#ev-{event_id}")).to_be_visible()
    except Exception:
        print(deployment.logs())
        raise
    finally:
        context.close()


def test_the_api_webhooks_and_the_engine_work_through_nginx_with_https_links(deployment):
    with deployment.client(deployment.token) as api:
        health = api.get("/api/health")
        assert health.status_code == 200
        assert "max-age=31536000" in health.headers["strict-transport-security"]

        prefix = f"deploy.api.{uuid.uuid4().hex[:8]}."
        events = [event_data(prefix + "created", f"deploy.order.{i}") for i in range(3)]
        assert api.post("/api/events", json=events).status_code == 204
        page = api.post(
            "/api/events/filter", json={"limit": 2, "filter": {"event": {"prefix": [prefix]}}}
        ).json()
        assert page["total"] == 3
        assert page["next_page"].startswith(
            deployment.public_url + "/api/events/filter/next?page-token="
        )
        rest = api.get(page["next_page"].removeprefix(deployment.public_url))
        assert rest.status_code == 200 and len(rest.json()["events"]) == 1

        # The engine (run_engine) reacts to the webhook's event with an event of its own.
        automation = api.post(
            "/api/automations/",
            json={
                "name": "deployment check",
                "trigger": {"type": "event", "posture": "Reactive", "expect": [prefix + "hooked"]},
                "actions": [
                    {
                        "type": "emit-event",
                        "event": {
                            "event": prefix + "reacted",
                            "resource": {"prefect.resource.id": "deploy.engine"},
                        },
                    }
                ],
            },
        )
        assert automation.status_code == 201, automation.text

        template = (
            '{"event": "' + prefix + 'hooked", "resource": {"prefect.resource.id": "deploy.hook"}}'
        )
        hook = api.post("/api/webhooks/", json={"name": "deployment", "template": template})
        assert hook.status_code == 201, hook.text
        receive_url = hook.json()["url"]
        assert receive_url.startswith(deployment.public_url + "/hooks/")
        received = api.post(receive_url.removeprefix(deployment.public_url), json={"ok": True})
        assert received.status_code in (200, 202, 204), received.text

        def named(suffix: str) -> Callable[[], bool]:
            def found() -> bool:
                body = {"filter": {"event": {"name": [prefix + suffix]}}, "limit": 1}
                return api.post("/api/events/filter", json=body).json()["total"] == 1

            return found

        wait_for(named("hooked"), "the webhook's event")
        wait_for(named("reacted"), "the engine's reaction", timeout=60)

    # Plain http through nginx goes to the public URL.
    redirect = httpx.get(
        f"http://127.0.0.1:{deployment.http_port}/events/?q=1",
        headers={"Host": HOST},
    )
    assert redirect.status_code == 301
    assert redirect.headers["location"] == deployment.public_url + "/events/?q=1"


def test_behind_the_proxy_the_audit_log_records_the_clients_address(deployment):
    # What nginx forwards to a web process for a client at 203.0.113.9 (see post_to_backend).
    name = f"deploy-audit-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"http://127.0.0.1:{deployment.web[0].port}/api/webhooks/",
        json={"name": name, "template": '{"event": "x", "resource": {"prefect.resource.id": "x"}}'},
        headers={
            "Host": f"{HOST}:{deployment.https_port}",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.9",
            "Authorization": f"Bearer {deployment.token}",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["url"].startswith(deployment.public_url + "/hooks/")

    with deployment.client(deployment.token) as api:
        query = {"filter": {"event": {"name": ["prefect-cloud.webhook.created"]}}, "limit": 50}
        audited = [
            e
            for e in api.post("/api/events/filter", json=query).json()["events"]
            if e["resource"].get("prefect.resource.name") == name
        ]
    assert [e["payload"]["actor"]["ip"] for e in audited] == ["203.0.113.9"]


def test_retention_runs_in_one_web_process_and_another_takes_over_when_it_stops(deployment):
    def holders() -> list[int]:
        with deployment.connect() as db:
            return lock_holding_processes(db.cursor(), "service:retention")

    web_pids = {p.popen.pid: p for p in deployment.web}
    (holder,) = wait_for(holders, "a process to run the retention service")
    assert holder in web_pids, "retention must run in a web process, not the engine"

    stopped = web_pids[holder]
    stopped.stop()
    try:
        (successor,) = wait_for(lambda: [p for p in holders() if p != holder], "a takeover")
        assert successor in web_pids and successor != holder
        assert len(holders()) == 1
    finally:
        stopped.start()
        stopped.wait_healthy()
