"""Live latency from the client's send to arrival on `/api/events/out` subscribers (issue 17 item 2,
issue 11 targets).

    .venv/bin/python -m bench.live [--subscribers 50 500] [--senders prefect sdk ws rest]
                                   [--events 200] [--interval 0.05] [--prefect-subscribers 5]

One `serve` (engine on). For each sender and each number of subscribers: subscriber processes
(one per 125 sockets) open the sockets with a filter on a fresh event-name prefix; the driver posts
warm-up events until every socket has one; then a sender process sends `--events` events, one
every `--interval` s, timing each just before its send call:

- `prefect`: Prefect 3.9.1's `emit_event` (worker thread, websocket `/api/events/in`);
- `sdk`: eventsite's SDK `events/client.py` (its thread, batched `POST /api/events`);
- `ws`: a raw websocket on `/api/events/in`, one frame per event;
- `rest`: one `POST /api/events` per event; also reported from the reply (the old figure).

Latency = arrival on a socket − the sender's clock just before the send call, over every
(event, socket) pair, as p50/p95/p99; the sockets are raw websocket clients (`--client lean`, the
default: `bench.live_parts.LeanSocket`, timed as each frame comes off the socket; or
`websockets`), except `--prefect-subscribers` of them that are Prefect's own `get_events_subscriber` (reported on their
own line). Delivered counts every (event, socket) pair against the expected number (they must be
equal). `--redis-restart` puts serve's channel layer and cache on a redis-server of the bench's
own (a free port; never the shared one) and restarts it halfway through each run's sending. `--stalled` (default 1) more subscribers stop reading after their filter: they are not
counted, and their fate (closed with a reason, or still open within their queue) is reported.
Server CPU per delivered pair is the `serve` process's CPU time over the measured window
divided by the pairs delivered. Targets (issue 17/11): p50 ≤ 10 ms, p95 ≤ 50 ms, none missed.

`--against-prefect [--rounds 2]`: the same scenario on ours and on Prefect 3.9.1's own server,
interleaved, in one table (bench/prefect_live.py; defaults 50 subscribers, sender `prefect`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import httpx

from bench.common import (
    QUICK,
    ROOT,
    Figures,
    RedisServer,
    Server,
    cpu_seconds,
    distribution_ms,
    fmt_dist,
    server_env,
)

SENDERS = ["prefect", "sdk", "ws", "rest"]


def bench_server_env(args: argparse.Namespace) -> tuple[dict[str, str], RedisServer | None]:
    """serve's environment, on the bench's own Redis when the run restarts it."""
    env = server_env()
    if not args.redis_restart:
        return env, None
    own = RedisServer()
    own.start()
    env["EVENTSITE_REDIS_URL"] = own.url
    return env, own


class Child:
    """A `bench.live_parts` process whose stdout lines arrive on a queue."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.live_parts", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")

    def _read_err(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)

    def expect(self, word: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                stderr = "".join(self.stderr)[-3000:]
                raise RuntimeError(f"no {word} in {timeout:.0f} s: {stderr}") from None
            if line.startswith(word):
                return line
            if line == "" and self.process.poll() is not None:
                raise RuntimeError(
                    f"child exited {self.process.returncode} before {word}: "
                    f"{''.join(self.stderr)[-3000:]}"
                )

    def tell(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def client_env(server: Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSITE_", "PREFECT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PREFECT_API_URL=f"{server.url}/api",
        PREFECT_API_AUTH_STRING=f"eventsite:{server.token}",
        PREFECT_HOME=tempfile.mkdtemp(prefix="bench-prefect-home-"),
        EVENTSITE_API_URL=server.url,
        EVENTSITE_API_TOKEN=server.token,
    )
    return env


def warm_up(server: Server, prefix: str, children: list[Child]) -> None:
    """Post matching events until every socket has received one (all are subscribed)."""
    ready: set[int] = set()
    deadline = time.monotonic() + 180
    with httpx.Client(headers=server.headers, timeout=30) as http:
        while len(ready) < len(children):
            event = {
                "occurred": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "event": f"{prefix}warmup",
                "resource": {"prefect.resource.id": "bench.live.warmup"},
                "id": str(uuid.uuid4()),
            }
            http.post(f"{server.url}/api/events", json=[event]).raise_for_status()
            time.sleep(0.25)
            for i, child in enumerate(children):
                while not child.lines.empty():
                    if child.lines.get().startswith("READY"):
                        ready.add(i)
            if time.monotonic() > deadline:
                raise RuntimeError("subscribers not ready in 180 s")


def scenario(
    server: Server,
    *,
    socket_kind: str,
    socket_url: str,
    secret: str,
    sender: str,
    subscribers: int,
    events: int,
    interval: float,
    prefect_subscribers: int = 0,
    stalled: int = 0,
    redis: RedisServer | None = None,
    client: str = "lean",
) -> dict:
    """One measured run: `subscribers` sockets, `events` events from `sender` (Redis restarted
    halfway through the sending when `redis` is given)."""
    prefix = f"bench.live.{uuid.uuid4().hex[:8]}."
    env = client_env(server)
    processes = 1 if subscribers <= 100 else math.ceil(subscribers / 125)
    shares = [subscribers // processes + (i < subscribers % processes) for i in range(processes)]
    children: list[Child] = []
    stallers: list[Child] = []
    try:
        for i, share in enumerate(shares):
            n_prefect = min(prefect_subscribers, share) if i == 0 else 0
            args = [
                "subscribe",
                socket_kind,
                socket_url,
                secret,
                str(share),
                prefix,
                str(n_prefect),
                client,
            ]
            children.append(Child(args, env))
        for child in children:
            child.expect("CONNECTED", 180)
        # Subscribers that stop reading: the others must not miss or wait for anything.
        stallers = [Child(["stall", socket_url, secret, prefix], env) for _ in range(stalled)]
        for staller in stallers:
            staller.expect("CONNECTED", 60)
        warm_up(server, prefix, children)
        cpu_before = server.cpu_seconds()
        clients_cpu_before = sum(cpu_seconds(child.process.pid) for child in children)
        send = Child(
            ["send", sender, server.url, server.token, prefix, str(events), str(interval)], env
        )
        restarts = redis.restarts if redis else 0
        restart = threading.Timer(events * interval / 2, redis.restart) if redis else None
        if restart:
            restart.start()
        sent_line = send.expect("{", 120 + events * interval * 4)
        send.process.wait(30)
        if restart:
            restart.join()
            restarts = redis.restarts - restarts
        sent = {i: (t0, t1) for i, t0, t1 in json.loads(sent_line)["sent"]}
        for child in children:
            child.tell("IDS " + json.dumps(list(sent)))
        results = [json.loads(child.expect("{", 120)) for child in children]
        cpu = server.cpu_seconds() - cpu_before
        clients_cpu = sum(cpu_seconds(child.process.pid) for child in children) - clients_cpu_before
        stalled_fate = []
        for staller in stallers:
            staller.tell("REPORT")
            stalled_fate.append(json.loads(staller.expect("{", 30)))
    finally:
        for child in children + stallers:
            child.stop()
        shutil.rmtree(env["PREFECT_HOME"], ignore_errors=True)
    from_send: dict[str, list[float]] = {"raw": [], "prefect": [], "feed": []}
    from_reply: list[float] = []
    from_stored: list[float] = []
    pairs: set[tuple[int, int, str]] = set()
    duplicates = 0
    closed: list[str] = []
    for p, result in enumerate(results):
        closed += result["closed"]
        for index, kind, event_id, at, stored_ms in result["arrivals"]:
            key = (p, index, event_id)
            if key in pairs:
                duplicates += 1
                continue
            pairs.add(key)
            t0, t1 = sent[event_id]
            from_send[kind].append((at - t0) * 1000)
            if stored_ms is not None:
                from_stored.append(stored_ms)
            from_reply.append((at - t1) * 1000)
    expected = events * subscribers
    call_ms = sorted((t1 - t0) * 1000 for t0, t1 in sent.values())
    starts = sorted(t0 for t0, _ in sent.values())
    # A sender slower than the schedule (a REST round trip longer than the interval) sends less.
    rate = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else None
    return {
        "sender": sender,
        "sockets": socket_kind,
        "subscribers": subscribers,
        "prefect_subscribers": min(prefect_subscribers, shares[0]) if socket_kind == "out" else 0,
        "subscriber_processes": processes,
        "client": client,
        "events": events,
        "interval_s": interval,
        "achieved_events_per_s": round(rate, 1) if rate else None,
        "expected": expected,
        "delivered": len(pairs),
        "missing": expected - len(pairs),
        "duplicates": duplicates,
        "send_to_arrival_ms": distribution_ms(from_send["raw"] + from_send["feed"]),
        "send_to_arrival_prefect_subscriber_ms": distribution_ms(from_send["prefect"]),
        "reply_to_arrival_ms": distribution_ms(from_reply) if sender == "rest" else None,
        # The server's `received` stamp (just before the commit) → arrival on a raw socket.
        "stored_to_arrival_ms": distribution_ms(from_stored),
        "send_call_ms_p50": round(call_ms[len(call_ms) // 2], 3) if call_ms else None,
        "serve_cpu_seconds": round(cpu, 2),
        "serve_cpu_us_per_delivery": round(cpu / len(pairs) * 1e6, 1) if pairs else None,
        # The subscriber processes' own CPU over the same window (they share serve's cores).
        "subscribers_cpu_us_per_delivery": round(clients_cpu / len(pairs) * 1e6, 1)
        if pairs
        else None,
        "closed": closed[:5],
        "stalled_subscribers": stalled_fate,
        "redis_restarts_mid_run": restarts,
    }


def every_scenario(figures: Figures, server: Server, args: argparse.Namespace, **how) -> list[dict]:
    """`scenario` for each subscriber count and sender of the command line, each reported."""
    runs = []
    for subscribers in args.subscribers:
        for sender in args.senders:
            r = scenario(
                server,
                sender=sender,
                subscribers=subscribers,
                events=args.events,
                interval=args.interval,
                client=args.client,
                **how,
            )
            report(figures, r)
            runs.append(r)
    return runs


def out_socket_scenarios(
    figures: Figures, server, args: argparse.Namespace, redis: RedisServer | None = None
) -> list[dict]:
    """`every_scenario` on `/api/events/out` (ours or Prefect's server), with the command line's
    Prefect subscribers and stalled ones."""
    return every_scenario(
        figures,
        server,
        args,
        socket_kind="out",
        socket_url=f"{server.ws_url}/api/events/out",
        secret=server.token,
        prefect_subscribers=args.prefect_subscribers,
        stalled=args.stalled,
        redis=redis,
    )


def record_runs(figures: Figures, server: Server, runs: list[dict]) -> None:
    figures.say(f"  serve peak RSS {server.peak_rss_mb():.0f} MB")
    figures.update(runs=runs, serve_peak_rss_mb=round(server.peak_rss_mb(), 1))
    figures["all_delivered"] = all(r["missing"] == 0 for r in runs)


def report(figures: Figures, r: dict) -> None:
    what = "/ws/feed/ sockets" if r["sockets"] == "feed" else "subscribers"
    ok = "all" if r["missing"] == 0 and not r["duplicates"] else "MISSING"
    figures.say(
        f"  {r['sender']:>7} → {r['subscribers']:>3} {what}: delivered {r['delivered']:,} of "
        f"{r['expected']:,} ({ok}; {r['duplicates']} duplicates)   sent {r['achieved_events_per_s']}"
        f" events/s   serve CPU {r['serve_cpu_us_per_delivery']} µs per delivery"
        f" (subscriber processes, {r.get('client', 'websockets')} client:"
        f" {r.get('subscribers_cpu_us_per_delivery')} µs)"
        + (f"   (Redis restarted {n}× mid-run)" if (n := r.get("redis_restarts_mid_run")) else "")
    )
    figures.say(f"      send → arrival:                   {fmt_dist(r['send_to_arrival_ms'])}")
    if r["stored_to_arrival_ms"]["n"]:
        figures.say(
            f"      stored → arrival (raw sockets):   {fmt_dist(r['stored_to_arrival_ms'])}"
        )
    if r["send_to_arrival_prefect_subscriber_ms"]["n"]:
        figures.say(
            f"      send → Prefect subscriber ({r['prefect_subscribers']}):    "
            f"{fmt_dist(r['send_to_arrival_prefect_subscriber_ms'])}"
        )
    if r["reply_to_arrival_ms"]:
        figures.say(
            f"      REST reply → arrival (old figure): {fmt_dist(r['reply_to_arrival_ms'])}   "
            f"(POST round trip p50 {r['send_call_ms_p50']:.1f} ms)"
        )
    if r["closed"]:
        figures.say(f"      closed: {r['closed'][:3]}")
    for fate in r["stalled_subscribers"]:
        state = (
            f"closed {fate['close_code']} {fate['close_reason']!r}"
            if fate["close_code"]
            else "still open (within its queue)"
        )
        figures.say(f"      a subscriber that stopped reading: {state}")


def arguments(default_senders: list[str], *, against_prefect: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, nargs="+")
    parser.add_argument("--senders", nargs="+", choices=SENDERS)
    parser.add_argument(
        "--events", type=int, default=int(os.environ.get("BENCH_LIVE_EVENTS", 50 if QUICK else 200))
    )
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--prefect-subscribers", type=int, default=5)
    parser.add_argument(
        "--stalled", type=int, default=1, help="extra subscribers that stop reading (not counted)"
    )
    parser.add_argument(
        "--client",
        choices=["lean", "websockets"],
        default="lean",
        help="the raw subscribers' client: a lean frame reader that times each frame as it comes "
        "off the socket (default), or the websockets library (its CPU on the same cores)",
    )
    parser.add_argument(
        "--redis-restart",
        action="store_true",
        help="serve on a redis-server of the bench's own, restarted halfway through each run",
    )
    if against_prefect:
        parser.add_argument(
            "--against-prefect",
            action="store_true",
            help="the same scenario on ours and on Prefect's own server, interleaved "
            "(bench/prefect_live.py; defaults: 50 subscribers, sender prefect)",
        )
        parser.add_argument("--rounds", type=int, default=2, help="(ours, Prefect) pairs")
    args = parser.parse_args()
    compare = getattr(args, "against_prefect", False)
    if args.subscribers is None:
        args.subscribers = [50] if QUICK or compare else [50, 500]
    if args.senders is None:
        args.senders = ["prefect"] if compare else default_senders
    return args


def main() -> None:
    args = arguments(SENDERS, against_prefect=True)
    if args.against_prefect:
        from bench.prefect_live import compare

        compare(args)
        return
    figures = Figures("live")
    env, redis = bench_server_env(args)
    server = Server(env)
    try:
        figures.say(
            f"live: send → arrival on /api/events/out, {args.events} events per run, one every "
            f"{args.interval * 1000:.0f} ms, serve with the engine on"
        )
        runs = out_socket_scenarios(figures, server, args, redis)
        record_runs(figures, server, runs)
    finally:
        server.remove()
        if redis:
            redis.stop()
    figures.finish()


if __name__ == "__main__":
    main()
