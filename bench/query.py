"""Query benchmark: server time of /api/events/filter and count-by with N events stored.

    .venv/bin/python bench/query.py [--events 1000000] [--data-dir var/bench-1m] [--repeat 15]

The data dir is filled once (through the one write path, in process) and reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import ROOT, events_over, summary_ms


def setup_django(data_dir: Path, database_url: str | None) -> None:
    os.environ["EVENTSITE_DATA_DIR"] = str(data_dir)
    if database_url:
        os.environ["EVENTSITE_DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
    os.environ["EVENTSITE_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(total: int, span: timedelta) -> None:
    from events.ingest import ingest
    from events.models import Event

    have = Event.objects.count()
    if have >= total:
        return
    print(f"storing {total - have:,} events (once; reused on later runs)…", file=sys.stderr)
    started = time.perf_counter()
    batch: list[dict] = []
    end = datetime.now(UTC) - timedelta(minutes=1)
    for i, event in enumerate(events_over(total, span=span, end=end, seed=11)):
        if i < have:
            continue
        batch.append(event)
        if len(batch) == 5000:
            ingest(batch, source="bench")
            batch = []
    if batch:
        ingest(batch, source="bench")
    print(f"  stored in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench-1m"))
    parser.add_argument("--database-url")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    setup_django(data_dir, args.database_url)
    fill(args.events, span=timedelta(days=6, hours=23))

    from django.contrib.auth.models import User
    from django.test import Client

    from events.models import ApiToken, Event

    user, _ = User.objects.get_or_create(username="bench")
    _, secret = ApiToken.issue(user, name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    stored = Event.objects.count()
    sample = Event.objects.order_by("-occurred")[1000]
    customer = next(
        r["prefect.resource.id"] for r in sample.related if r["prefect.resource.role"] == "customer"
    )
    week = {"since": (datetime.now(UTC) - timedelta(days=7)).isoformat()}

    def post(path: str, body: dict):
        response = client.post(path, body, content_type="application/json")
        assert response.status_code == 200, response.content[:300]
        return response

    cases = {
        "newest page, unfiltered": ("/api/events/filter", {"limit": 50}),
        "event-name prefix": (
            "/api/events/filter",
            {"filter": {"event": {"prefix": ["acme.payment."]}}},
        ),
        "exact resource id": (
            "/api/events/filter",
            {"filter": {"resource": {"id": [sample.resource_id]}}},
        ),
        "resource label glob": (
            "/api/events/filter",
            {"filter": {"resource": {"labels": {"acme.region": "eu-*"}}}},
        ),
        "related resource id": ("/api/events/filter", {"filter": {"related": {"id": [customer]}}}),
        "text search": ("/api/events/filter", {"filter": {"text": {"query": "gold -error"}}}),
        "count-by/time, 7 days (hour)": (
            "/api/events/count-by/time",
            {"filter": {"occurred": week}, "time_unit": "hour", "time_interval": 1},
        ),
        "count-by/event": ("/api/events/count-by/event", {"filter": {"occurred": week}}),
    }
    print(
        f"query benchmark: {stored:,} events stored ({Event.objects.db.split('.')[0] if False else ''}"
        f"{'PostgreSQL' if args.database_url else 'SQLite'}), server time over {args.repeat} requests"
    )
    for name, (path, body) in cases.items():
        post(path, body)  # warm
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = post(path, body)
            times.append(time.perf_counter() - started)
        extra = ""
        if path.endswith("/filter"):
            extra = f"   total {response.json()['total']:,}"
        print(f"  {name:32} {summary_ms(times)}{extra}")

    # Page 200: walk the next-page tokens, then time fetching page 200 itself.
    page = post("/api/events/filter", {"limit": 50}).json()
    for _ in range(198):
        page = client.get(page["next_page"]).json()
    url = page["next_page"]
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
    assert response.status_code == 200
    print(f"  {'page 200 via next-page tokens':32} {summary_ms(times)}")


if __name__ == "__main__":
    main()
