"""Live latency: from `POST /api/events` returning to the event arriving on /api/events/out.

50 subscribers (first argument or BENCH_SUBSCRIBERS) hold Prefect-protocol sockets with a filter
in one process; this process posts M single-event requests (BENCH_LIVE_EVENTS, default 300),
20 ms apart, and records when each POST returned. Latency = arrival on a subscriber − return of
the POST, over every (event, subscriber) pair; it can be negative, because the broadcast happens
at commit, before the response is written. Also prints the serve process's peak RSS.

    .venv/bin/python bench/live.py [SUBSCRIBERS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Server, bench_env, percentile  # noqa: E402

PYTHON = sys.executable

SUBSCRIBERS = """
import asyncio, json, sys, time
import orjson
from websockets.asyncio.client import connect

async def subscriber(url, token, expected, arrivals, ready):
    async with connect(url, subprotocols=["prefect"], max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": f"bench:{token}"}))
        assert json.loads(await ws.recv())["type"] == "auth_success"
        await ws.send(json.dumps({"type": "filter", "filter": {"event": {"prefix": ["bench.live."]}}}))
        seen = 0
        while seen < expected:
            message = await ws.recv()
            now = time.time()
            event = orjson.loads(message)["event"]
            if event["event"] == "bench.live.warmup":
                ready.append(1)
                continue
            arrivals.append((event["id"], now))
            seen += 1

async def main():
    url, token, count, expected = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    arrivals, ready = [], []
    tasks = [asyncio.create_task(subscriber(url, token, expected, arrivals, ready)) for _ in range(count)]
    print("CONNECTING", flush=True)
    loop = asyncio.get_running_loop()
    async def report_ready():
        while len(ready) < count:
            await asyncio.sleep(0.01)
        print("READY", flush=True)
    await asyncio.gather(report_ready(), *tasks)
    print(json.dumps(arrivals), flush=True)

asyncio.run(main())
"""


def event(name: str) -> dict:
    return {
        "occurred": datetime.now(UTC).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": "bench.live.1"},
        "payload": {"n": 1},
        "id": str(uuid.uuid4()),
    }


def size_from_args(default: int, env: str) -> int:
    """The benchmark size: the first command-line argument, else the env variable, else default."""
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        return int(sys.argv[1])
    return int(os.environ.get(env, default))


def main() -> None:
    subscribers = size_from_args(50, "BENCH_SUBSCRIBERS")
    count = int(os.environ.get("BENCH_LIVE_EVENTS", 300))
    env = bench_env(os.environ.get("EVENTSITE_DATABASE_URL"))
    server = Server(env)
    try:
        ws_url = server.url.replace("http", "ws") + "/api/events/out"
        child = subprocess.Popen(
            [PYTHON, "-c", SUBSCRIBERS, ws_url, server.token, str(subscribers), str(count)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "CONNECTING"
        with httpx.Client(headers=server.headers, timeout=30) as http:
            # Warm-up events until every subscriber has seen one: all sockets are subscribed.
            ready = False
            os.set_blocking(child.stdout.fileno(), False)
            deadline = time.monotonic() + 60
            while not ready:
                http.post(f"{server.url}/api/events", json=[event("bench.live.warmup")])
                time.sleep(0.2)
                line = child.stdout.readline()
                ready = line.strip() == "READY"
                if time.monotonic() > deadline:
                    raise RuntimeError(f"subscribers not ready: {child.stderr.read()[-2000:]}")
            os.set_blocking(child.stdout.fileno(), True)
            sent: dict[str, tuple[float, float]] = {}
            for _ in range(count):
                body = [event("bench.live.tick")]
                started = time.time()
                response = http.post(f"{server.url}/api/events", json=body)
                returned = time.time()
                assert response.status_code == 204, response.text
                sent[body[0]["id"]] = (started, returned)
                time.sleep(0.02)
        out, err = child.communicate(timeout=120)
        arrivals = json.loads(out.strip().splitlines()[-1])
        after_return = [(at - sent[i][1]) * 1000 for i, at in arrivals]
        after_start = [(at - sent[i][0]) * 1000 for i, at in arrivals]
        post_ms = [(r - s) * 1000 for s, r in sent.values()]
        expected = count * subscribers
        print(
            f"live: {subscribers} subscribers, {count} events posted one per request, 20 ms apart"
        )
        print(f"  delivered {len(arrivals):,} of {expected:,} (event, subscriber) pairs")
        print(
            f"  POST returned -> arrival: median {statistics.median(after_return):.1f} ms, "
            f"p95 {percentile(after_return, 95):.1f} ms, max {max(after_return):.1f} ms"
        )
        print(
            f"  POST sent -> arrival:     median {statistics.median(after_start):.1f} ms, "
            f"p95 {percentile(after_start, 95):.1f} ms (POST itself: median "
            f"{statistics.median(post_ms):.1f} ms)"
        )
        print(f"serve peak RSS (VmHWM): {server.peak_rss_mb():.0f} MB")
    finally:
        server.stop()
        shutil.rmtree(env["EVENTSITE_DATA_DIR"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
