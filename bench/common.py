"""Shared pieces of the benchmarks: realistic events, a server process, measuring helpers."""

from __future__ import annotations

import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"]
KINDS = ["order", "payment", "shipment", "invoice", "flow-run", "deployment"]
VERBS = ["created", "updated", "completed", "failed", "cancelled", "retried"]
TAGS = [f"tag-{i}" for i in range(20)]


def uuid7(at: datetime | None = None) -> uuid.UUID:
    """A time-ordered UUID (version 7), like the ids the Prefect client generates."""
    ms = int((at or datetime.now(UTC)).timestamp() * 1000)
    value = (ms & 0xFFFFFFFFFFFF) << 80 | random.getrandbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


def make_event(rng: random.Random, occurred: datetime) -> dict:
    """A realistic event: 2–5 labels, 1–3 related resources, a ~300-byte payload."""
    kind = rng.choice(KINDS)
    prefix = "prefect" if kind in ("flow-run", "deployment") else "acme"
    n = rng.randrange(100_000)
    resource = {
        "prefect.resource.id": f"{prefix}.{kind}.{n}",
        "prefect.resource.name": f"{kind.title()} {n}",
        "acme.region": rng.choice(REGIONS),
    }
    for i in range(rng.randrange(0, 3)):
        resource[f"acme.attr{i}"] = secrets.token_hex(4)
    related = [
        {
            "prefect.resource.id": f"acme.customer.{rng.randrange(1000)}",
            "prefect.resource.role": "customer",
            "prefect.resource.name": f"Customer {rng.randrange(1000)}",
        }
    ]
    for tag in rng.sample(TAGS, rng.randrange(0, 3)):
        related.append(
            {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        )
    payload = {
        "amount": round(rng.random() * 1000, 2),
        "currency": "EUR",
        "attempt": rng.randrange(5),
        "message": " ".join(
            rng.choice(["order", "paid", "late", "gold", "retry", "ok", "error", "eu"])
            for _ in range(12)
        ),
        "trace": secrets.token_hex(32),
    }
    return {
        "occurred": occurred.isoformat(),
        "event": f"{prefix}.{kind}.{rng.choice(VERBS)}",
        "resource": resource,
        "related": related,
        "payload": payload,
        "id": str(uuid7(occurred)),
    }


def events_over(count: int, *, span: timedelta, end: datetime | None = None, seed: int = 7):
    """`count` events spread evenly (oldest first) over `span` ending at `end`."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    start = end - span
    step = span / max(count, 1)
    for i in range(count):
        yield make_event(rng, start + step * i)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(*args: str, env: dict[str, str], capture: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def bench_env(database_url: str | None = None, data_dir: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSITE_")}
    env["EVENTSITE_DATA_DIR"] = data_dir or tempfile.mkdtemp(prefix="eventsite-bench-")
    env["EVENTSITE_LOG_LEVEL"] = "WARNING"
    if database_url:
        env["EVENTSITE_DATABASE_URL"] = database_url
    if os.environ.get("EVENTSITE_REDIS_URL"):
        env["EVENTSITE_REDIS_URL"] = os.environ["EVENTSITE_REDIS_URL"]
    return env


def fresh_postgres(url: str) -> str:
    """Recreate the database named in `url` (for a clean benchmark) and return the URL."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url


class Server:
    """`manage.py serve` on a free port, with a migrated database and a user + token."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        manage("migrate", "-v0", env=env)
        manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; User.objects.filter(username='bench').exists() "
            "or User.objects.create_user('bench', password='bench-password-1')",
            env=env,
        )
        self.token = (
            manage("create_api_token", "bench", "--name", "bench", env=env).strip().splitlines()[-1]
        )
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), "--no-first-run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary_ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms   p95 {percentile(values, 95) * 1000:7.1f} ms"
