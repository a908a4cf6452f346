"""Issue 14's comparison: every filter of ours at 1M against Prefect 3.9.1's own server at 100k.

    .venv/bin/python -m bench.prefect_compare [--prefect-events 100000] [--events 1000000]
        [--repeat 15] [--rounds 2] [--ours-json FILE] [--venv DIR] [--home DIR] [--fresh]
        [--prefect-database-url postgresql+asyncpg://postgres@127.0.0.1:5432/prefect_compare]

1. Prefect's server: a throwaway venv outside the repository (`--venv`, default
   /tmp/prefect-3.9.1-venv, made with `pip install prefect==3.9.1` and reused when present),
   `prefect server start` on a free port with its own PREFECT_HOME and SQLite database in `--home`
   (default /tmp/prefect-3.9.1-compare-<N>; nothing in the repository, nothing shared). Its
   settings stay the shipped defaults except: event retention 10 years (so the 7-day-old end of
   the data is not trimmed), analytics and UI off, and the event persister's batch 200 instead of
   20 (it only speeds up loading; queries do not depend on it).
2. Loads `--prefect-events` events from the generator our seed uses (`bench.common.events_over`,
   same seed and 7-day span as `bench/seed.py`, ending when the load starts) through Prefect's own
   ingest path, the events websocket `/api/events/in` (one JSON event per message), paced so its
   persister queue (50,000) never drops any, and waits until `/api/events/filter` counts them all.
   The loaded home is kept and reused by later runs (`--fresh` reloads). With
   `--prefect-database-url` Prefect stores in that PostgreSQL database instead (its name must
   start with `prefect`; a load drops and recreates it).
3. Times every case of `bench.query` (same bodies: newest page of 50 with its `total`, count-by
   over 7 days) against Prefect: one warm-up, then `--repeat` requests (3 when the warm-up took
   over 2 s), median; a case Prefect refuses (422) is listed as not expressible. Time windows
   are anchored at the end of each store's data, as in `bench.query`.
4. Runs `python -m bench.query --events <N>` (our `serve`, same backend as the environment:
   SQLite by default, PostgreSQL with EVENTSITE_DATABASE_URL) for the same API cases, or reads
   its figures from `--ours-json` (a results file of a run in the same session).
5. With `--rounds 2` (default) Prefect is timed again after ours (server restarted on the same
   stored database), so the two are interleaved; the comparison uses Prefect's faster median.

Prints criterion | Prefect at 100k | eventsite at 1M | ours no slower?, and writes
`bench/results/<UTC>-<commit>-prefect_compare.json` (+ `.txt`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import (
    QUICK,
    ROOT,
    Figures,
    backend_name,
    cpu_seconds,
    events_over,
    free_port,
    loadavg,
    percentile,
    proc_status_mb,
)
from bench.query import SLOW_WARM_MS, api_cases
from bench.seed import SPAN

PREFECT_VERSION = "3.9.1"
SEED = 11  # bench/seed.py's generator seed
# Prefect's in-memory broker drops a message when a subscription's queue holds 10,000 (and its
# persister's own queue holds 50,000): keep fewer than this many sent but not yet stored.
IN_FLIGHT = 4_000


def fresh_prefect_database(url: str) -> None:
    """Drop and recreate Prefect's PostgreSQL database (only one named `prefect…`)."""
    import psycopg

    base, _, name = url.replace("+asyncpg", "").rpartition("/")
    if not name.startswith("prefect"):
        raise SystemExit(f"refusing to recreate {name!r}: Prefect's database must be prefect*")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def ensure_venv(venv: Path) -> Path:
    """Prefect 3.9.1 in a venv of its own, made once (outside the repository) and reused."""
    prefect = venv / "bin" / "prefect"
    if prefect.exists():
        found = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import prefect; print(prefect.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if found == PREFECT_VERSION:
            return prefect
    print(f"making {venv} with prefect=={PREFECT_VERSION} (once)…", flush=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"prefect=={PREFECT_VERSION}"], check=True
    )
    return prefect


class PrefectServer:
    """`prefect server start` on a free port, with its own home and SQLite database."""

    def __init__(self, prefect: Path, home: Path, database_url: str | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        # What bench.live's clients send as credentials: Prefect OSS without an auth string
        # accepts any (its sockets still want the `auth` message first).
        self.token = "none"
        self.headers = {"Content-Type": "application/json"}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EVENTSITE_"))}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_SERVER_EVENTS_RETENTION_PERIOD="P3650D",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE="200",
            **({"PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url} if database_url else {}),
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        )
        self.log = open(home / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        # A session of its own: `prefect server start` runs uvicorn as a child; stop() ends both.
        self.process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            cwd=home,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited {self.process.returncode}: {self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"prefect server did not answer /api/health: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return (self.home / "server.log").read_text(errors="replace")[-chars:]

    def dropped(self) -> int:
        """How many events Prefect's in-memory broker dropped (it logs each one)."""
        return self.tail(10**9).count("queue is full, dropping message")

    def stored(self, client: httpx.Client) -> int:
        response = client.post("/api/events/filter", json={"limit": 0})
        response.raise_for_status()
        return response.json()["total"]

    def pids(self) -> list[int]:
        """The server's processes: its session (`prefect server start` and its uvicorn child)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.process.pid:  # process group: the session's leader
                found.append(int(stat.parent.name))
        return found

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def peak_rss_mb(self) -> float:
        """The sum of each server process's VmHWM (its own peak resident set)."""
        return sum(proc_status_mb(pid, "VmHWM") for pid in self.pids())

    def remove(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.log.close()


def load(server: PrefectServer, count: int, figures: Figures) -> dict:
    """Send `count` seed-shaped events through Prefect's events websocket; wait until stored."""
    from websockets.sync.client import connect

    end = datetime.now(UTC)
    client = httpx.Client(base_url=server.url, timeout=600)
    started = time.monotonic()
    sent = 0
    ws_url = server.url.replace("http://", "ws://") + "/api/events/in"
    # No keep-alive pings: a busy server answers them late, and the pacing waits are idle.
    with connect(ws_url, max_size=None, ping_interval=None) as socket:
        for event in events_over(count, span=SPAN, end=end, seed=SEED):
            socket.send(json.dumps(event))
            sent += 1
            if sent % 1_000 == 0:
                while sent - server.stored(client) > IN_FLIGHT:
                    time.sleep(0.5)
                if sent % 10_000 == 0:
                    print(f"  sent {sent:,}", flush=True)
    deadline = time.monotonic() + 900
    stored = server.stored(client)
    while stored < count and time.monotonic() < deadline and not server.dropped():
        time.sleep(2)
        stored = server.stored(client)
    seconds = time.monotonic() - started
    client.close()
    info = {
        "events": count,
        "stored": stored,
        "end": end.isoformat(),
        "span_seconds": SPAN.total_seconds(),
        "seed": SEED,
        "load_seconds": round(seconds, 1),
        "events_per_second": round(stored / seconds, 1),
        "loaded": datetime.now(UTC).isoformat(),
    }
    figures.say(
        f"  loaded {stored:,} of {count:,} events through Prefect's /api/events/in in "
        f"{seconds:.0f} s ({stored / seconds:,.0f}/s, persisted)"
    )
    dropped = server.dropped()
    if stored != count or dropped:
        raise SystemExit(
            f"{dropped:,} messages dropped by Prefect's broker; "
            f"Prefect stored {stored:,} of {count:,} events; not timing a partial store"
        )
    return info


def api_payloads(end: datetime) -> dict[str, tuple[str, dict]]:
    """bench.query's API cases with the body each request sends (the same for both servers)."""
    return {
        name: (path, body if "count-by" in path else {"filter": body, "limit": 50})
        for name, (path, body) in api_cases(end).items()
    }


def time_prefect(server: PrefectServer, end: datetime, repeat: int, figures: Figures) -> dict:
    """Like `bench.query.timed`, but a case Prefect refuses or fails is recorded, not fatal."""
    client = httpx.Client(base_url=server.url, timeout=600)
    results = {}
    for name, (path, body) in api_payloads(end).items():
        started = time.perf_counter()
        try:
            response = client.post(path, json=body)  # warm-up
        except httpx.HTTPError as exc:
            results[name] = {"status": None, "detail": repr(exc)}
            figures.say(f"  {name:40} Prefect failed: {exc!r}")
            client.close()
            client = httpx.Client(base_url=server.url, timeout=600)
            continue
        if response.status_code != 200:
            results[name] = {"status": response.status_code, "detail": response.text[:300]}
            figures.say(f"  {name:40} Prefect answered {response.status_code}")
            # Its server closes the connection after a 500: the next case needs a new one.
            client.close()
            client = httpx.Client(base_url=server.url, timeout=600)
            continue
        slow = (time.perf_counter() - started) * 1000 > SLOW_WARM_MS
        times = []
        for _ in range(min(repeat, 3) if slow else repeat):
            started = time.perf_counter()
            response = client.post(path, json=body)
            times.append((time.perf_counter() - started) * 1000)
        data = response.json()
        total = data.get("total") if isinstance(data, dict) else len(data)
        results[name] = {
            "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(percentile(times, 95), 2),
            "requests": len(times),
            "total": total,
        }
        figures.say(
            f"  {name:40} median {statistics.median(times):8.1f} ms   "
            f"p95 {percentile(times, 95):8.1f} ms   total {total:,}"
        )
    client.close()
    return results


def prefect_round(
    prefect: Path, home: Path, database_url: str | None, info: dict, repeat: int, figures: Figures
) -> dict:
    figures.say(f"Prefect {PREFECT_VERSION}, load average {' '.join(map(str, loadavg()))}")
    server = PrefectServer(prefect, home, database_url)
    try:
        client = httpx.Client(base_url=server.url, timeout=600)
        stored = server.stored(client)
        client.close()
        if stored != info["stored"]:
            raise SystemExit(f"Prefect's store holds {stored:,}, expected {info['stored']:,}")
        figures.say(f"  {stored:,} events stored; {repeat} requests each after one warm-up")
        return time_prefect(server, datetime.fromisoformat(info["end"]), repeat, figures)
    finally:
        server.stop()
        figures.say(f"  load average {' '.join(map(str, loadavg()))} after Prefect's round")


def run_ours(events: int, repeat: int, names: list[str]) -> dict:
    """`python -m bench.query` for the API cases (its own serve, backend from the environment)."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        shared = f.name
    args = [sys.executable, "-m", "bench.query", "--events", str(events), "--repeat", str(repeat)]
    for name in names:
        args += ["--only", name]
    subprocess.run(args, cwd=ROOT, env={**os.environ, "BENCH_FIGURES": shared}, check=True)
    records = [json.loads(line) for line in Path(shared).read_text().splitlines() if line]
    os.unlink(shared)
    return records[-1]


def ours_from_json(path: Path) -> dict:
    data = json.loads(path.read_text())
    return next(b for b in data["benches"] if b["bench"] == "query")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefect-events", type=int, default=5_000 if QUICK else 100_000)
    parser.add_argument("--events", type=int, default=50_000 if QUICK else 1_000_000)
    parser.add_argument("--repeat", type=int, default=5 if QUICK else 15)
    parser.add_argument("--rounds", type=int, choices=(1, 2), default=2)
    parser.add_argument(
        "--ours-json", type=Path, help="our figures from a bench.query results file"
    )
    parser.add_argument("--venv", type=Path, default=Path(f"/tmp/prefect-{PREFECT_VERSION}-venv"))
    parser.add_argument("--home", type=Path)
    parser.add_argument("--fresh", action="store_true", help="reload Prefect's store")
    parser.add_argument("--prefect-database-url", help="Prefect on PostgreSQL (postgresql+asyncpg)")
    args = parser.parse_args()
    url = args.prefect_database_url
    on = "-postgresql" if url else ""
    home = args.home or Path(f"/tmp/prefect-{PREFECT_VERSION}-compare-{args.prefect_events}{on}")

    figures = Figures("prefect_compare")
    prefect = ensure_venv(args.venv)
    marker = home / "loaded.json"
    if args.fresh or not marker.exists():
        if home.exists():
            subprocess.run(["rm", "-rf", str(home)], check=True)
        home.mkdir(parents=True)
        if url:
            fresh_prefect_database(url)
        figures.say(
            f"Prefect {PREFECT_VERSION}: loading {args.prefect_events:,} events into {home}"
        )
        server = PrefectServer(prefect, home, url)
        try:
            info = load(server, args.prefect_events, figures)
        finally:
            server.stop()
        marker.write_text(json.dumps(info, indent=2) + "\n")
    else:
        info = json.loads(marker.read_text())
        figures.say(f"Prefect {PREFECT_VERSION}: reusing {info['stored']:,} events in {home}")

    rounds = [prefect_round(prefect, home, url, info, args.repeat, figures)]
    names = list(api_payloads(datetime.now(UTC)))
    if args.ours_json:
        ours = ours_from_json(args.ours_json)
        ours_backend = json.loads(args.ours_json.read_text())["backend"]
        figures.say(f"eventsite: figures from {args.ours_json}")
    else:
        figures.say(f"eventsite: python -m bench.query --events {args.events:,} (API cases)")
        ours = run_ours(args.events, args.repeat, names)
        ours_backend = backend_name()
    ours_cases = {c["case"]: c for c in ours["figures"]["cases"]}
    if args.rounds == 2:
        rounds.append(prefect_round(prefect, home, url, info, args.repeat, figures))

    def prefect_best(name: str) -> float | None:
        medians = [r[name]["median_ms"] for r in rounds if "median_ms" in r.get(name, {})]
        return min(medians) if medians else None

    k = args.prefect_events // 1000
    m = args.events / 1_000_000
    scale = f"{m:g}M" if m >= 1 else f"{args.events // 1000}k"
    figures.say()
    figures.say(
        f"{'criterion':40} | Prefect {PREFECT_VERSION}{' on PostgreSQL' if url else ''} at {k}k (ms) | eventsite at {scale} (ms) "
        f"| ours no slower"
    )
    rows, slower, skipped = [], [], []
    for name in names:
        theirs, mine = prefect_best(name), ours_cases.get(name)
        if theirs is None:
            status = rounds[0][name]["status"]
            why = "cannot express (422)" if status == 422 else f"fails ({status or 'no answer'})"
            skipped.append(f"{name}: {why}")
            mine_ms = f"{mine['median_ms']:20.1f}" if mine else f"{'not run':>20}"
            figures.say(f"{name:40} | {why:>22} | {mine_ms} |")
            continue
        if mine is None:
            figures.say(f"{name:40} | {theirs:22.1f} | {'not run':>20} |")
            continue
        ok = mine["median_ms"] <= theirs
        if not ok:
            slower.append(name)
        rows.append(
            {
                "case": name,
                "prefect_ms": theirs,
                "prefect_rounds_ms": [r[name].get("median_ms") for r in rounds],
                "prefect_total": rounds[0][name]["total"],
                "ours_ms": mine["median_ms"],
                "ours_total": mine.get("total"),
                "ours_no_slower": ok,
                "ratio": round(mine["median_ms"] / theirs, 3) if theirs else None,
            }
        )
        verdict = "yes" if ok else f"NO (x{mine['median_ms'] / theirs:.1f})"
        figures.say(f"{name:40} | {theirs:22.1f} | {mine['median_ms']:20.1f} | {verdict}")
    figures.say(
        f"{len(rows) - len(slower)}/{len(rows)} of ours no slower"
        + (f"; slower: {', '.join(slower)}" if slower else "")
        + (f"; not comparable: {'; '.join(skipped)}" if skipped else "")
    )
    figures.say(
        "not compared: page 200, the feed page and the admin list (bench.query's other cases)"
    )
    figures.update(
        prefect_version=PREFECT_VERSION,
        prefect_backend="PostgreSQL" if url else "SQLite",
        prefect_load=info,
        prefect_rounds=rounds,
        ours_events=args.events,
        ours_load=[ours.get("load_start"), ours.get("load_end")],
        ours_backend=ours_backend,
        rows=rows,
        slower=slower,
        prefect_not_comparable=skipped,
    )
    figures.finish()


if __name__ == "__main__":
    main()
