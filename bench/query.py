"""Queries over HTTP against `serve` (engine on) with N stored events, and the server's memory.

    .venv/bin/python -m bench.query [--events 1000000] [--repeat 15] [--skip NAME-PART ...]
        [--only NAME-PART ...] [--in-place]

The store is a copy of a seeded one (`bench/seed.py`, cached under `var/bench-data/`, or a
PostgreSQL template database), spread over the 7 days before the seed was made; time windows
are anchored at the seed's end, so a cached seed measures the same thing tomorrow. Each case is
requested once to warm up and then `--repeat` times (3 when the warm-up took over 2 s) from a
keep-alive HTTP client; the figure is the client's time for the whole request (newest page of
50 with its `total`). Covered: every
criterion of issue 14 (time, name/prefix and their excludes, resource id/prefix, labels exact,
glob, negation and several keys, absent values and rare globs, related id/role/resources_in_roles/labels, any_resource, text,
`distinct`), three combinations, `count-by` over 7 days, page 200 via next-page tokens, the feed
page `/events/` with filters, the feed inputs' suggestions (`/events/suggest/`, 7 days), and the
admin's event list. `GET /api/health` is the baseline round trip (HTTP and Daphne, no query).

Memory (issue 17 item 4): the peak RSS (VmHWM) of `serve` over the whole run, and after each
case, so the case that raises it shows. Targets: every API case ≤ 50 ms median at 1M
(issue 14), the feed and its suggestions ≤ 100 ms, the admin ≤ 200 ms, peak RSS ≤ 300 MB on
SQLite (issue 17).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bench.common import QUICK, Figures, Sampler, Server, manage, percentile
from bench.feed_live import login
from bench.seed import LONG_RETENTION, seeded_env, seeded_in_place, vacuum_analyze_once


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def api_cases(end: datetime) -> dict[str, tuple[str, dict]]:
    week = {"since": iso(end - timedelta(days=7)), "until": iso(end)}
    hour = {"since": iso(end - timedelta(hours=1)), "until": iso(end)}
    day = {"since": iso(end - timedelta(days=1)), "until": iso(end)}
    f = "/api/events/filter"
    return {
        "newest page, unfiltered": (f, {}),
        "time: the last hour": (f, {"occurred": hour}),
        "name exact": (f, {"event": {"name": ["acme.payment.failed"]}}),
        "name prefix": (f, {"event": {"prefix": ["acme.payment."]}}),
        "exclude prefix": (f, {"event": {"exclude_prefix": ["prefect."]}}),
        "exclude name": (f, {"event": {"exclude_name": ["acme.order.created"]}}),
        "resource id": (f, {"resource": {"id": ["acme.order.4242"]}}),
        "resource id prefix": (f, {"resource": {"id_prefix": ["acme.order.123"]}}),
        "label exact": (f, {"resource": {"labels": {"acme.region": ["eu-west"]}}}),
        "label glob": (f, {"resource": {"labels": {"acme.region": ["eu-*"]}}}),
        "label negation": (f, {"resource": {"labels": {"acme.region": ["!eu-west"]}}}),
        "labels, two keys": (
            f,
            {
                "resource": {
                    "labels": {"acme.region": ["us-east"], "prefect.resource.name": ["Invoice 7*"]}
                }
            },
        ),
        # A value in no event (a typo, a name no resource has) and rare globs (16 events of 1M;
        # 174, a wildcard inside): SQLite reads them from the FTS5 table of text search past
        # the walk, PostgreSQL from its trigram index (page_plans._walk_labels, _rare_labels).
        "label absent: two keys, no such name": (
            f,
            {
                "resource": {
                    "labels": {
                        "acme.region": ["us-east"],
                        "prefect.resource.name": ["Nonexistent*"],
                    }
                }
            },
        ),
        "label absent: a typo": (f, {"resource": {"labels": {"acme.region": ["us-eats"]}}}),
        "label rare glob": (
            f,
            {"resource": {"labels": {"prefect.resource.name": ["Invoice 4242*"]}}},
        ),
        "label rare glob, wildcard inside": (
            f,
            {"resource": {"labels": {"prefect.resource.name": ["Invoice 42*7"]}}},
        ),
        "related labels: absent value": (
            f,
            {"related": {"labels": {"prefect.resource.name": ["Customer 4242"]}}},
        ),
        "related id": (f, {"related": {"id": ["acme.customer.42"]}}),
        "related role": (f, {"related": {"role": ["tag"]}}),
        "related resources_in_roles": (
            f,
            {"related": {"resources_in_roles": [["prefect.tag.tag-3", "tag"]]}},
        ),
        "related labels": (f, {"related": {"labels": {"prefect.resource.name": ["Customer 7*"]}}}),
        "any_resource id": (f, {"any_resource": {"id": ["acme.customer.42"]}}),
        "any_resource id prefix": (f, {"any_resource": {"id_prefix": ["prefect.tag.tag-1"]}}),
        "text": (f, {"text": {"query": "gold -error"}}),
        # One resource id's events (~1 in 1M), one customer's (~0.1 %), none: the text index.
        "text: rare term": (f, {"text": {"query": "'\"acme.order.4242\"'"}}),
        "text: 0.1 % term": (f, {"text": {"query": "'\"acme.customer.42\"'"}}),
        "text: absent term": (f, {"text": {"query": "no-such-text-anywhere"}}),
        "distinct resources": (f, {"resource": {"distinct": True}}),
        "combo: prefix + label ! + role": (
            f,
            {
                "event": {"prefix": ["acme."]},
                "resource": {"labels": {"acme.region": ["!us-*"]}},
                "related": {"role": ["tag"]},
            },
        ),
        "combo: 24 h + id prefix + text": (
            f,
            {
                "occurred": day,
                "resource": {"id_prefix": ["acme.payment.1"]},
                "text": {"query": "late"},
            },
        ),
        "combo: exclude + any labels + related": (
            f,
            {
                "event": {"exclude_prefix": ["prefect."]},
                "any_resource": {"labels": {"acme.region": ["ap-south"]}},
                "related": {"id": ["acme.customer.7"]},
            },
        ),
        "count-by/time, 7 days (hour)": (
            "/api/events/count-by/time",
            {"filter": {"occurred": week}, "time_unit": "hour", "time_interval": 1},
        ),
        "count-by/event, 7 days": ("/api/events/count-by/event", {"filter": {"occurred": week}}),
        "count-by/resource, 7 days": (
            "/api/events/count-by/resource",
            {"filter": {"occurred": week}},
        ),
    }


def request_body(path: str, body: dict) -> dict:
    """The JSON an `api_cases` case posts: a page of 50 with its filter, or the count-by body."""
    return body if "count-by" in path else {"filter": body, "limit": 50}


def feed_cases(end: datetime) -> dict[str, str]:
    window = {"since": iso(end - timedelta(days=1))[:19] + "Z", "until": iso(end)[:19] + "Z"}
    return {
        "feed: last 24 h of the seed": f"/events/?{urlencode(window)}",
        "feed: event=acme.payment.*": f"/events/?{urlencode({**window, 'event': 'acme.payment.*'})}",
        "feed: label=acme.region=eu-west": (
            f"/events/?{urlencode({**window, 'label': 'acme.region=eu-west'})}"
        ),
        "feed: label absent (prefect.resource.name=Nonexistent*)": (
            f"/events/?{urlencode({**window, 'label': 'prefect.resource.name=Nonexistent*'})}"
        ),
        "feed: q=gold": f"/events/?{urlencode({**window, 'q': 'gold'})}",
        "feed: q=acme.order.4242": f"/events/?{urlencode({**window, 'q': 'acme.order.4242'})}",
        "admin: event list": "/admin/events/event/",
    }


def suggest_cases(end: datetime) -> dict[str, str]:
    """The feed inputs' suggestions over the seed's 7 days: bench/feed.py's cases, two that match
    nothing (an id prefix, a typed text that could be an id or a name), and two id prefixes whose
    rows all have the other role (tags are only related, orders only primary)."""
    week = {"since": iso(end - timedelta(days=7))[:19] + "Z", "until": iso(end)[:19] + "Z"}

    def url(field: str, typed: str) -> str:
        return f"/events/suggest/?{urlencode({**week, 'field': field, field: typed})}"

    return {
        "suggest: resource, empty": url("resource", ""),
        "suggest: resource, typed name": url("resource", "order-golf"),
        "suggest: resource, id prefix": url("resource", "acme.order.1"),
        "suggest: resource, id prefix, no match": url("resource", "zzz.no-such."),
        "suggest: resource, text, no match": url("resource", "no-such-resource"),
        "suggest: resource, id prefix of related ids": url("resource", "prefect.tag."),
        "suggest: related, typed": url("related", "flow-1"),
        "suggest: related, id prefix of primary ids": url("related", "acme.order.1"),
        "suggest: related, empty": url("related", ""),
        "suggest: label keys": url("label", "acme.re"),
        "suggest: label values": url("label", "env=st"),
    }


SLOW_WARM_MS = 2000  # a case whose warm-up takes longer is repeated only 3 times


def timed(request, repeat: int) -> tuple[list[float], httpx.Response]:
    started = time.perf_counter()
    response = request()  # warm
    if (time.perf_counter() - started) * 1000 > SLOW_WARM_MS:
        repeat = min(repeat, 3)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = request()
        times.append((time.perf_counter() - started) * 1000)
    return times, response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000 if QUICK else 1_000_000)
    parser.add_argument("--repeat", type=int, default=5 if QUICK else 15)
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help="leave out the cases whose name contains this (repeatable)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only the cases whose name contains this (repeatable)",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="PostgreSQL: query the database of EVENTSITE_DATABASE_URL itself, seeded in place "
        "(`bench.seed --in-place`; a 10M store has no room for a clone); the queries change no "
        "event",
    )
    args = parser.parse_args()

    def left_out(name: str) -> bool:
        wanted = not args.only or any(part in name for part in args.only)
        return not wanted or any(part in name for part in args.skip)

    figures = Figures("query")
    if args.in_place:
        url = os.environ.get("EVENTSITE_DATABASE_URL")
        if not url:
            parser.error("--in-place needs EVENTSITE_DATABASE_URL (PostgreSQL)")
        env, seed = seeded_in_place(url, args.events)
        vacuum_analyze_once(url)
    else:
        env, seed = seeded_env(args.events)
    end = datetime.fromisoformat(seed["end"])
    database = Path(env["EVENTSITE_DATA_DIR"]) / "eventsite.sqlite3"
    if database.exists():  # SQLite: the store's size, after the copy's migrations
        figures.say(f"  SQLite database {database.stat().st_size / 1e6:,.0f} MB")
        figures.update(database_mb=round(database.stat().st_size / 1e6, 1))
    if "copy_migrate_seconds" in seed:  # EVENTSITE_BENCH_TEMPLATE: the branch's migrations
        figures.say(f"  the copy migrated in {seed['copy_migrate_seconds']} s")
        figures.update(copy_migrate_seconds=seed["copy_migrate_seconds"])
    server = Server(env, extra_env=LONG_RETENTION)
    # The admin list needs a staff user: make the bench user one (through Django's own shell).
    manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='bench').update(is_staff=True, is_superuser=True)",
        env=server.env,
    )
    cases = []
    try:
        api = httpx.Client(base_url=server.url, headers=server.headers, timeout=600)
        pages = httpx.Client(base_url=server.url, timeout=600)
        pages.cookies.set("sessionid", login(server.url))
        health, _ = timed(lambda: api.get("/api/health"), args.repeat)
        stored = api.post("/api/events/filter", json={"limit": 1}).json()["total"]
        figures.say(
            f"queries over HTTP against serve (engine on), {stored:,} events stored, "
            f"{args.repeat} requests each after one warm-up; client time per request"
        )
        figures.say(
            f"  {'baseline: GET /api/health':40} median {statistics.median(health):8.1f} ms"
        )

        def record(name: str, times: list[float], response: httpx.Response, target: float):
            # 503: the server's query timeout stopped it (a figure too: the case is too slow).
            status = response.status_code
            assert status in (200, 503), (name, status, response.text[:300])
            median = statistics.median(times)
            total, estimate = None, None
            if status == 200 and "json" in response.headers.get("content-type", ""):
                data = response.json()
                # A page's total; for count-by, how many rows came back.
                total = data.get("total") if isinstance(data, dict) else len(data)
                estimate = data.get("total_is_estimate") if isinstance(data, dict) else None
            peak = server.peak_rss_mb()
            ok = "ok" if median <= target and status == 200 else "SLOW"
            ok = ok if status == 200 else "503"
            figures.say(
                f"  {name:40} median {median:8.1f} ms   p95 {percentile(times, 95):8.1f} ms   "
                f"{ok:4}  peak RSS {peak:5.0f} MB"
                + (f"   total {'about ' if estimate else ''}{total:,}" if total is not None else "")
            )
            cases.append(
                {
                    "case": name,
                    "median_ms": round(median, 2),
                    "p95_ms": round(percentile(times, 95), 2),
                    "requests": len(times),
                    "target_ms": target,
                    "ok": median <= target and status == 200,
                    "status": status,
                    "total": total,
                    "total_is_estimate": estimate,
                    "peak_rss_after_mb": round(peak, 1),
                }
            )

        with Sampler(server.rss_mb, 0.1) as rss:
            for name, (path, body) in api_cases(end).items():
                if left_out(name):
                    continue
                payload = request_body(path, body)
                times, response = timed(lambda p=path, b=payload: api.post(p, json=b), args.repeat)
                record(name, times, response, 50)

            # Page 200: walk the next-page tokens, then time fetching page 200 itself.
            if not left_out("page 200 via next-page tokens"):
                page = api.post("/api/events/filter", json={"limit": 50}).json()
                for _ in range(198):
                    page = api.get(page["next_page"]).json()
                url = page["next_page"]
                times, response = timed(lambda: api.get(url), args.repeat)
                record("page 200 via next-page tokens", times, response, 50)

            for name, path in feed_cases(end).items():
                if left_out(name):
                    continue
                times, response = timed(lambda p=path: pages.get(p), args.repeat)
                record(name, times, response, 200 if name.startswith("admin") else 100)

            for name, path in suggest_cases(end).items():
                if left_out(name):
                    continue
                times, response = timed(lambda p=path: pages.get(p), args.repeat)
                record(name, times, response, 100)

        slow = [c["case"] for c in cases if not c["ok"]]
        figures.say(
            f"  {len(cases) - len(slow)}/{len(cases)} within target"
            + (f"; slow: {', '.join(slow)}" if slow else "")
        )
        figures.say(
            f"  serve peak RSS {server.peak_rss_mb():.0f} MB (VmHWM; target ≤ 300 MB on SQLite), "
            f"sampled peak {rss.peak:.0f} MB"
        )
        figures.update(
            stored_events=stored,
            repeat=args.repeat,
            seed_end=seed["end"],
            baseline_health_ms=round(statistics.median(health), 2),
            cases=cases,
            within_target=len(cases) - len(slow),
            slow=slow,
            serve_peak_rss_mb=round(server.peak_rss_mb(), 1),
        )
        api.close()
        pages.close()
    finally:
        server.remove()
    figures.finish()


if __name__ == "__main__":
    main()
