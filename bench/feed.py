"""Server time of the feed and the other event pages with many events stored, and the
browser's load event for them.

    .venv/bin/python bench/feed.py                     # 1,000,000 events in a fresh data dir
    BENCH_EVENTS=200000 .venv/bin/python bench/feed.py # fewer
    BENCH_DATA_DIR=/tmp/feedbench .venv/bin/python bench/feed.py  # reuse (tops it up to N)
    BENCH_BROWSER=0 ...                                # skip the browser part
    BENCH_BROWSER_ONLY=1 ...                           # only the browser part

Events are spread over the last 7 days (the default retention) and written with the one write
path (`events.ingest.store`) in large batches. Each page is requested in-process through Django's
test `Client` (logged in), so the figures are server time: the view, its queries, the templates.
Target: median ≤ 100 ms for the first page with its histogram and for each filter type, for a
resource page and the other pages of issue 15 (detail, suggestions, export's first rows), and
"load more" at depth 10,000 as fast as the first page.

Then (issue 15) a real `manage.py serve` on the same data and Debian's Chromium (Playwright) open
the feed, a filtered feed, a resource page and an event page: the figure is the navigation's
`loadEventEnd` (ms from the start of navigation), median of `BENCH_BROWSER_REPEAT` loads.
Target: within 1 s on a quiet machine.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = int(os.environ.get("BENCH_EVENTS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "15"))
BROWSER = os.environ.get("BENCH_BROWSER", "1") != "0"
BROWSER_ONLY = os.environ.get("BENCH_BROWSER_ONLY") == "1"
BROWSER_REPEAT = int(os.environ.get("BENCH_BROWSER_REPEAT", "7"))
BATCH = int(os.environ.get("BENCH_BATCH", "20000"))
DEPTH = int(os.environ.get("BENCH_DEPTH", "10000"))
SPAN = timedelta(days=7)

data_dir = os.environ.get("BENCH_DATA_DIR") or tempfile.mkdtemp(prefix="eventsite-bench-feed-")
os.environ["EVENTSITE_DATA_DIR"] = data_dir
os.environ.pop("EVENTSITE_DATABASE_URL", None)
os.environ.pop("EVENTSITE_REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
os.environ.setdefault("EVENTSITE_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from bench.common import Server, bench_env  # noqa: E402
from events import queries  # noqa: E402
from events.filters import EventFilter  # noqa: E402
from events.ingest import store  # noqa: E402
from events.models import Event as EventRow  # noqa: E402
from events.schema import Event  # noqa: E402

# (name, weight): a Prefect-shaped mix with a heavy log stream and some custom events.
NAMES = [
    ("prefect.log.write", 30),
    ("prefect.flow-run.Pending", 6),
    ("prefect.flow-run.Running", 6),
    ("prefect.flow-run.Completed", 5),
    ("prefect.flow-run.Failed", 1),
    ("prefect.task-run.Running", 10),
    ("prefect.task-run.Completed", 10),
    ("prefect.task-run.Failed", 1),
    ("prefect.deployment.updated", 1),
    ("prefect.work-pool.ready", 1),
    ("prefect.flow-run.heartbeat", 8),
    ("acme.order.created", 8),
    ("acme.order.shipped", 4),
    ("acme.payment.captured", 5),
    ("acme.payment.refunded", 1),
    ("prefect-cloud.user.logged-in", 1),
    ("prefect.automation.triggered", 1),
]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def generate(count: int, now: datetime, rng: random.Random) -> list[Event]:
    names = [n for n, _ in NAMES]
    weights = [w for _, w in NAMES]
    out = []
    for name in rng.choices(names, weights, k=count):
        occurred = now - timedelta(seconds=rng.random() * SPAN.total_seconds())
        kind = name.split(".")[1] if name.startswith("prefect") else name.split(".")[1]
        rid = f"{name.rsplit('.', 1)[0]}.{rng.randrange(20000)}"
        flow = rng.randrange(200)
        related = [
            {
                "prefect.resource.id": f"prefect.flow.{flow}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": f"flow-{flow}",
            },
            {
                "prefect.resource.id": f"prefect.tag.{rng.choice(WORDS)}",
                "prefect.resource.role": "tag",
            },
        ]
        if rng.random() < 0.5:
            related.append(
                {
                    "prefect.resource.id": f"prefect.deployment.{flow % 50}",
                    "prefect.resource.role": "deployment",
                }
            )
        out.append(
            Event(
                occurred=occurred,
                event=name,
                resource={
                    "prefect.resource.id": rid,
                    "prefect.resource.name": f"{kind}-{rng.choice(WORDS)}-{rng.randrange(1000)}",
                    "env": rng.choice(["prod", "prod", "staging", "dev"]),
                },
                related=related,
                payload={"message": " ".join(rng.choices(WORDS, k=6)), "n": rng.randrange(10**6)},
                id=uuid.uuid4(),
            )
        )
    return out


def fill() -> None:
    call_command("migrate", verbosity=0)
    have = EventRow.objects.count()
    if have >= N:
        print(f"reusing {have:,} events in {data_dir}")
        return
    rng = random.Random(have)
    now = datetime.now(UTC)
    started = time.perf_counter()
    done = have
    while done < N:
        n = min(BATCH, N - done)
        store(generate(n, now, rng), source="bench")
        done += n
        rate = (done - have) / (time.perf_counter() - started)
        print(f"\r  stored {done:,}/{N:,} ({rate:,.0f}/s)", end="", flush=True)
    print(f"\nstored {N - have:,} events in {time.perf_counter() - started:.0f} s into {data_dir}")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def measure(client: Client, url: str, *, htmx_target: str | None = None) -> list[float]:
    headers = {"HX-Request": "true", "HX-Target": htmx_target} if htmx_target else {}
    times = []
    for _ in range(REPEAT + 1):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        assert b'class="errors"' not in response.content, url
    # The first request fills the histogram cache (settled buckets); the rest are what a person
    # reloading or paging sees. Both are reported.
    return times


def report(label: str, times: list[float], results: list) -> None:
    cold, times = times[0], sorted(times[1:])
    median = statistics.median(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    ok = "ok" if median <= 100 else "SLOW"
    results.append((label, median, ok))
    print(f"  {label:<44} median {median:7.1f} ms   p95 {p95:7.1f} ms   cold {cold:7.1f} ms   {ok}")


def token_at_depth(depth: int) -> str:
    page = queries.first_page(EventFilter.model_validate(_default_filter()), limit=50)
    for _ in range(depth // 50 - 1):
        page = queries.next_page(page.next_token)
    return page.next_token


def _default_filter() -> dict:
    # What the feed builds for `?range=7d`: log writes hidden.
    now = datetime.now(UTC)
    return {
        "occurred": {"since": now - timedelta(days=7), "until": now},
        "event": {"exclude_name": ["prefect.log.write"]},
    }


def main() -> None:
    fill()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    client = Client()
    client.force_login(user)
    if BROWSER_ONLY:
        browser_load(
            [("feed", "/events/"), ("feed, 7 days", "/events/?range=7d"), *page_cases()[:4]],
            session=client.cookies[settings.SESSION_COOKIE_NAME].value,
        )
        return
    total = EventRow.objects.count()
    print(f"\nfeed page server time, {total:,} events over 7 days, {REPEAT} requests each:")
    results: list = []
    cases = [
        ("first page (24h, histogram, name picker)", "/events/"),
        ("range=15m", "/events/?range=15m"),
        ("range=1h", "/events/?range=1h"),
        ("range=7d", "/events/?range=7d"),
        ("range=30d", "/events/?range=30d"),
        ("since/until (a 6 h window)", None),
        ("event=prefect.flow-run.* (prefix)", "/events/?event=prefect.flow-run.*"),
        ("event=acme.payment.refunded (exact, rare)", "/events/?event=acme.payment.refunded"),
        ("event=prefect.log.write (picked)", "/events/?event=prefect.log.write"),
        ("exclude=prefect.task-run.*", "/events/?exclude=prefect.task-run.*"),
        ("resource=acme.order.123 (exact)", "/events/?resource=acme.order.123"),
        ("resource=acme.order.* (prefix)", "/events/?resource=acme.order.*"),
        ("label=env=staging", "/events/?label=env%3Dstaging"),
        ("related=prefect.flow.7", "/events/?related=prefect.flow.7"),
        ("role=deployment", "/events/?role=deployment"),
        ("related + role", "/events/?related=prefect.deployment.7&role=deployment"),
        ("q=foxtrot (text)", "/events/?q=foxtrot"),
    ]
    now = datetime.now(UTC)
    for label, url in cases:
        if url is None:
            since = (now - timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
            until = (now - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
            url = f"/events/?since={since}&until={until}"
        report(label, measure(client, url), results)

    print("\nload more (htmx rows partial, range=7d):")
    first = measure(client, "/events/?range=7d", htmx_target="load-more")
    report("rows partial, first page", first, results)
    token = token_at_depth(DEPTH)
    deep = measure(client, f"/events/?range=7d&after={token}", htmx_target="load-more")
    report(f"rows partial at depth {DEPTH:,}", deep, results)

    print("\nother pages (issue 15):")
    pages = page_cases()
    for label, url in pages:
        report(label, measure(client, url), results)
    report("export csv, first 1,000 rows (range=7d)", measure_export(client), results)

    slow = [label for label, _, ok in results if ok != "ok"]
    print(
        f"\n{len(results) - len(slow)}/{len(results)} within 100 ms"
        + (f"; slow: {slow}" if slow else "")
    )
    if BROWSER:
        browser_load(
            [("feed", "/events/"), ("feed, 7 days", "/events/?range=7d"), *pages[:4]],
            session=client.cookies[settings.SESSION_COOKIE_NAME].value,
        )


def page_cases() -> list[tuple[str, str]]:
    """The pages of issue 15 on this data: resources busy and quiet, an event with a story."""
    busy_flow = "prefect.flow.7"  # related to ~1/200 of all events
    order = EventRow.objects.filter(event="acme.order.created").order_by("-occurred").first()
    run = EventRow.objects.filter(event="prefect.flow-run.Failed").order_by("-occurred").first()
    return [
        ("resource page, a flow (related, busy)", f"/resources/{busy_flow}/"),
        ("resource page, an order (primary)", f"/resources/{order.resource_id}/"),
        ("event page (story, related runs)", f"/events/{run.id}/"),
        ("resource=acme.order.* (chips, top names)", "/events/?resource=acme.order.*&range=7d"),
        ("suggest resource, empty", "/events/suggest/?field=resource&resource="),
        ("suggest resource, typed", "/events/suggest/?field=resource&resource=order-golf"),
        ("suggest resource, id prefix", "/events/suggest/?field=resource&resource=acme.order.1"),
        ("suggest related", "/events/suggest/?field=related&related=flow-1"),
        ("suggest label values", "/events/suggest/?field=label&label=env%3Dst"),
    ]


def measure_export(client: Client) -> list[float]:
    """Time to the first streamed chunk (1,000 rows) of a CSV export of a week."""
    times = []
    for _ in range(REPEAT + 1):
        started = time.perf_counter()
        response = client.get("/events/export/?range=7d&format=csv")
        assert response.status_code == 200
        first_chunk(response.streaming_content)
        times.append((time.perf_counter() - started) * 1000)
    return times


def first_chunk(content) -> bytes:
    async def read() -> bytes:
        async for chunk in content:
            return chunk
        return b""

    return async_to_sync(read)()


def browser_load(cases: list[tuple[str, str]], *, session: str) -> None:
    """The browser's load event for each page, against a real serve on the same data."""
    env = bench_env(data_dir=data_dir)
    server = Server(env, engine=False, extra_env={"EVENTSITE_EVENT_RETENTION": "3650d"})
    print(f"\nbrowser load event (Chromium, serve --no-engine, {BROWSER_REPEAT} loads each):")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
            )
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            # Signed in as the in-process client is: same database, same secret key.
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": server.url}]
            )
            page = context.new_page()
            for label, path in cases:
                loads, first_bytes = [], []
                for _ in range(BROWSER_REPEAT + 1):
                    page.goto(server.url + path, wait_until="load")
                    timing = page.evaluate(
                        "(() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return [n.loadEventEnd, n.responseStart]; })()"
                    )
                    loads.append(timing[0])
                    first_bytes.append(timing[1])
                cold, warm = loads[0], sorted(loads[1:])
                median = statistics.median(warm)
                ok = "ok" if median <= 1000 else "SLOW"
                print(
                    f"  {label:<44} median {median:7.0f} ms   max {warm[-1]:7.0f} ms"
                    f"   cold {cold:7.0f} ms   first byte {statistics.median(first_bytes[1:]):5.0f} ms"
                    f"   {ok}"
                )
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
