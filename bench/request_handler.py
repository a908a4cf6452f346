"""Django's stock ASGI handler against `serve`'s (`eventsite.request_threads`), in process.

    .venv/bin/python -m bench.request_handler [--requests 500] [--rounds 3]

`GET /api/health` (the whole middleware chain, no query) driven through each handler with the
ASGI messages a server would send, one request at a time, alternating the two handlers each
round: what a request's thread hand-offs cost, without HTTP, Daphne or a client. Uses a
throwaway SQLite data directory. Stop 23 (load ~0.6): 2.3–2.7 ms stock against 0.35–0.38 ms
per request (`…T064500Z` and `…T064509Z-9d3e5c6-request_handler`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

from bench.common import Figures


def scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def one(app, path: str) -> None:
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]
    never = asyncio.Event()

    async def receive():
        if incoming:
            return incoming.pop()
        await never.wait()  # no disconnect: the handler cancels this once it has answered

    sent = []

    async def send(message):
        sent.append(message)

    await app(scope(path), receive, send)
    assert sent[0]["status"] == 200, sent[0]


async def timed(app, path: str, requests: int) -> float:
    for _ in range(50):
        await one(app, path)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        await one(app, path)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
    os.environ["EVENTSITE_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-handler-")
    os.environ.setdefault("EVENTSITE_SECRET_KEY", "bench-request-handler")
    os.environ.pop("EVENTSITE_DATABASE_URL", None)
    import django

    django.setup(set_prefix=False)
    from django.core.handlers.asgi import ASGIHandler

    from eventsite.request_threads import OneHopASGIHandler

    figures = Figures("request_handler")
    handlers = {"stock": ASGIHandler(), "one_hop": OneHopASGIHandler()}
    medians: dict[str, list[float]] = {name: [] for name in handlers}

    async def run() -> None:
        for _ in range(args.rounds):
            for name, app in handlers.items():
                medians[name].append(await timed(app, "/api/health", args.requests))

    asyncio.run(run())
    for name, values in medians.items():
        spread = " / ".join(f"{v:.0f}" for v in values)
        figures.say(
            f"  {name:8s} GET /api/health   median {statistics.median(values):6.0f} µs ({spread})"
        )
        figures[f"{name}_us"] = round(statistics.median(values), 1)
    figures.finish()


if __name__ == "__main__":
    main()
