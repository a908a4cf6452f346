"""Benchmark the webhook receiver and the cost of an audit event.

Standalone: starts `manage.py serve` on a free port with a fresh EVENTSITE_DATA_DIR (SQLite),
creates a webhook with a dynamic JSON template through the REST API, then

1. sends it N requests from C concurrent keep-alive connections (an asyncio HTTP/1.1 client:
   plain streams, so the client costs little CPU next to the server on the same machine;
   `--client httpx` uses httpx's AsyncClient instead, which itself tops out at a few hundred
   requests/s here) and prints requests/s and latency percentiles, checking every request was
   answered 204 and stored;
2. measures what an audit event adds to the action it records: creating an API token with and
   without the audit hook (in this process, same database), and a full login over HTTP.

    .venv/bin/python bench/webhooks.py [--requests 20000] [--connections 64] [--verification github]

`--verification github` makes every request carry a GitHub-style `X-Hub-Signature-256` that the
receiver checks (HMAC-SHA256 of the body), to show what a signed webhook costs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = (
    '{"event": "bench.model.refreshed", "resource": {"prefect.resource.id": '
    '"product.models.{{ body.model }}", "prefect.resource.name": '
    '"{{ body.friendly_name|default(body.model) }}", "team": "{{ headers["x-team"] }}"}, '
    '"payload": {"run": {{ body.run|tojson }}, "size": {{ body["items"]|length }}}}'
)
BODY = b'{"model": "recs", "friendly_name": "Recommendations", "run": {"id": 7}, "items": [1, 2]}'
SIGNING_KEY = "bench-signing-key"
# Extra request headers (the signature, with --verification github).
EXTRA: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: str, port: int) -> tuple[subprocess.Popen, str, str]:
    env = {
        **os.environ,
        "EVENTSITE_DATA_DIR": data_dir,
        "EVENTSITE_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "eventsite.settings",
    }
    env.pop("EVENTSITE_DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    token = password = None
    for line in server.stdout:
        if m := re.search(r"API token: (\S+)", line):
            token = m[1]
        if m := re.search(r"password: (\S+)", line):
            password = m[1]
        if line.startswith("eventsite serving"):
            break
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return server, token, password
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("server did not start")


async def _raw_worker(port: int, path: str, count: int, latencies: list, statuses: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-Team: data-science\r\nContent-Length: {len(BODY)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in EXTRA.items())
        + "\r\n"
    ).encode() + BODY
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        if length and int(length[1]):
            await reader.readexactly(int(length[1]))
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def _httpx_worker(url: str, count: int, client, latencies: list, statuses: dict) -> None:
    headers = {"Content-Type": "application/json", "X-Team": "data-science", **EXTRA}
    for _ in range(count):
        started = time.perf_counter()
        response = await client.post(url, content=BODY, headers=headers)
        latencies.append(time.perf_counter() - started)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1


async def load(port: int, slug: str, requests: int, connections: int, kind: str) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    per = requests // connections
    path = f"/hooks/{slug}"
    started = time.perf_counter()
    if kind == "httpx":
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            await asyncio.gather(
                *[
                    _httpx_worker(
                        f"http://127.0.0.1:{port}{path}", per, client, latencies, statuses
                    )
                    for _ in range(connections)
                ]
            )
    else:
        await asyncio.gather(
            *[_raw_worker(port, path, per, latencies, statuses) for _ in range(connections)]
        )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "sent": per * connections,
        "rate": per * connections / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "statuses": statuses,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), to state the server's cost per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_count(url: str, token: str) -> int:
    response = httpx.post(
        f"{url}/api/events/filter",
        json={"filter": {"event": {"name": ["bench.model.refreshed"]}}, "limit": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    return response.json()["total"]


def audit_cost(data_dir: str, repeat: int = 200) -> dict:
    """Token creation in this process with and without the audit hook, on the same database."""
    os.environ["EVENTSITE_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    from events import audit
    from events.audit import signals as audit_signals
    from events.models import ApiToken

    user = get_user_model().objects.get(username="admin")

    def issue_many() -> float:
        times = []
        for i in range(repeat):
            started = time.perf_counter()
            ApiToken.issue(user, name=f"bench-{i}")
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    with_hook = issue_many()
    post_save.disconnect(
        audit_signals._token_saved, sender=ApiToken, dispatch_uid="audit-api-token"
    )
    try:
        without_hook = issue_many()
    finally:
        post_save.connect(
            audit_signals._token_saved, sender=ApiToken, dispatch_uid="audit-api-token"
        )
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        audit.record(audit.USER_LOGGED_IN, target=user, user=user)
        times.append(time.perf_counter() - started)
    return {
        "with": with_hook,
        "without": without_hook,
        "record": statistics.median(times) * 1000,
    }


def login_latency(url: str, password: str, repeat: int = 10) -> float:
    times = []
    for _ in range(repeat):
        with httpx.Client(base_url=url) as client:
            client.get("/accounts/login/")
            csrf = client.cookies["csrftoken"]
            started = time.perf_counter()
            response = client.post(
                "/accounts/login/",
                data={"username": "admin", "password": password, "csrfmiddlewaretoken": csrf},
            )
            times.append(time.perf_counter() - started)
            assert response.status_code == 302, response.status_code
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--client", choices=["asyncio", "httpx"], default="asyncio")
    parser.add_argument("--verification", choices=["none", "github"], default="none")
    args = parser.parse_args()
    settings: dict = {}
    if args.verification == "github":
        settings = {"verification": "github", "verification_secret": SIGNING_KEY}
        digest = hmac.new(SIGNING_KEY.encode(), BODY, hashlib.sha256).hexdigest()
        EXTRA["X-Hub-Signature-256"] = f"sha256={digest}"

    with tempfile.TemporaryDirectory(prefix="eventsite-bench-") as data_dir:
        port = free_port()
        server, token, password = start_server(data_dir, port)
        url = f"http://127.0.0.1:{port}"
        try:
            created = httpx.post(
                f"{url}/api/webhooks/",
                json={"name": "bench", "description": "", "template": TEMPLATE, **settings},
                headers={"Authorization": f"Bearer {token}"},
            )
            created.raise_for_status()
            slug = created.json()["slug"]
            probe = httpx.post(
                f"{url}/hooks/{slug}", content=BODY, headers={"X-Team": "t", **EXTRA}, timeout=10
            )
            assert probe.status_code == 204, probe.text
            # Warm up (compile caches, connections), then measure.
            warm = asyncio.run(load(port, slug, 1000, args.connections, args.client))
            cpu_before = cpu_seconds(server.pid)
            result = asyncio.run(load(port, slug, args.requests, args.connections, args.client))
            cpu_per_request = (cpu_seconds(server.pid) - cpu_before) / result["sent"]
            total = stored_count(url, token)
            print(
                f"webhook receiver, dynamic JSON template, verification {args.verification}, "
                f"{args.client} client, "
                f"{args.connections} connections: {result['rate']:,.0f} requests/s "
                f"(p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms); "
                f"answers {result['statuses']}; events stored {total:,} "
                f"(of {result['sent'] + warm['sent'] + 1:,} sent)"
            )
            print(
                f"server CPU per request {cpu_per_request * 1000:.2f} ms: one otherwise idle core "
                f"would take about {1 / cpu_per_request:,.0f} requests/s"
            )
            login = login_latency(url, password)
        finally:
            server.terminate()
            server.wait(10)
        cost = audit_cost(data_dir)
        print(
            f"audit: API token creation {cost['without']:.2f} ms without the audit hook, "
            f"{cost['with']:.2f} ms with it (+{cost['with'] - cost['without']:.2f} ms); "
            f"one audit event alone {cost['record']:.2f} ms; a whole login over HTTP "
            f"{login:.0f} ms (password hashing dominates)"
        )
        load_avg = os.getloadavg()
        print(
            f"machine: {os.cpu_count()} cores, load average {load_avg[0]:.1f} "
            "(shared with other work; figures vary with it)"
        )


if __name__ == "__main__":
    main()
