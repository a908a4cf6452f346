"""Feed live latency: from `POST /api/events` returning to the row arriving on /ws/feed/ sockets.

50 logged-in feed sockets (first argument or BENCH_SUBSCRIBERS) watch `?event=bench.live.*`; this
process posts BENCH_LIVE_EVENTS single-event requests (default 200), 20 ms apart, and measures
arrival − return of the POST over every (event, socket) pair (negative when the row is pushed at
commit, before the response is written).

    .venv/bin/python bench/feed_live.py [SUBSCRIBERS]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Server, bench_env, percentile  # noqa: E402

ROW_ID = re.compile(r'id="ev-([0-9a-f-]{36})"')


async def login(base: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        await http.get("/accounts/login/")
        csrf = http.cookies["csrftoken"]
        response = await http.post(
            "/accounts/login/",
            data={"username": "bench", "password": "bench-password-1", "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{base}/accounts/login/"},
        )
        assert response.status_code == 302, response.text[:300]
        return http.cookies["sessionid"]


async def main() -> None:
    subscribers = (
        int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_SUBSCRIBERS", 50))
    )
    count = int(os.environ.get("BENCH_LIVE_EVENTS", 200))
    server = Server(bench_env())
    try:
        session = await login(server.url)
        ws_url = server.url.replace("http", "ws") + "/ws/feed/?event=bench.live.*"
        headers = {"Cookie": f"sessionid={session}", "Origin": server.url}
        arrivals: dict[str, list[float]] = {}
        sockets = [
            await connect(ws_url, additional_headers=headers, max_size=None)
            for _ in range(subscribers)
        ]

        async def listen(ws) -> None:
            async for message in ws:
                now = time.time()
                html = json.loads(message).get("html", "")
                for event_id in ROW_ID.findall(html):
                    arrivals.setdefault(event_id, []).append(now)

        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
        returned: dict[str, float] = {}
        async with httpx.AsyncClient(headers=server.headers, timeout=30) as http:
            for i in range(count + 5):
                event_id = str(uuid.uuid4())
                body = [
                    {
                        "occurred": datetime.now(UTC).isoformat(),
                        "event": "bench.live.ping",
                        "resource": {"prefect.resource.id": f"bench.{i}"},
                        "id": event_id,
                    }
                ]
                response = await http.post(f"{server.url}/api/events", json=body)
                assert response.status_code == 204
                if i >= 5:  # the first few warm the sockets up
                    returned[event_id] = time.time()
                await asyncio.sleep(0.02)
        await asyncio.sleep(2)
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()
        latencies = [
            t - returned[i] for i, times in arrivals.items() if i in returned for t in times
        ]
        delivered = sum(1 for i in returned for _ in arrivals.get(i, []))
        print(
            f"feed live push, {subscribers} feed sockets, {count} events posted one by one (SQLite)"
        )
        print(
            f"  POST returned → row on socket: median {statistics.median(latencies) * 1000:6.1f} ms"
            f"   p95 {percentile(latencies, 95) * 1000:6.1f} ms   delivered {delivered:,} of {count * subscribers:,}"
        )
        print(f"  serve peak RSS {server.peak_rss_mb():.0f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
