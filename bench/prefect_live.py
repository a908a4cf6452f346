"""Issue 17 item 2's last clause: live latency on Prefect 3.9.1's own server, in the same run.

    .venv/bin/python -m bench.live --against-prefect [--subscribers 50] [--senders prefect]
        [--events 150] [--interval 0.05] [--prefect-subscribers 5] [--stalled 1] [--rounds 2]

`bench.live`'s scenario, unchanged, run in turn on our `serve` (a fresh SQLite store, engine on)
and on Prefect 3.9.1's own server (`bench.prefect_compare.PrefectServer`: the throwaway venv
/tmp/prefect-3.9.1-venv, a fresh PREFECT_HOME and SQLite database in /tmp/prefectlive-*, deleted
afterwards), interleaved: ours, Prefect, ours, Prefect (`--rounds` pairs). Each round starts its
server, runs every (subscribers, sender) scenario and stops it, so only one server is up at a time.

On Prefect's server the same parts do the same things: the `prefect` sender is Prefect's
`emit_event` with PREFECT_API_URL on that server; the subscribers are raw websockets on its
`/api/events/out` (Prefect OSS's protocol: an `auth` message, answered `auth_success` whatever
the token when no auth string is set, then a `filter`) and `--prefect-subscribers` of them
Prefect's `get_events_subscriber`; the warm-up goes through its `POST /api/events`. Server CPU
is the CPU time of Prefect's processes (`prefect server start` and its uvicorn child).

Prints one table (a row per server, round and sender) and whether ours is no slower than Prefect
in the adjacent round (p50 and p95 of send → arrival on raw sockets); writes
`bench/results/<UTC>-<commit>-prefect_live.json` (+ `.txt`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench.common import Figures, Server, loadavg
from bench.live import bench_server_env, out_socket_scenarios
from bench.prefect_compare import PREFECT_VERSION, PrefectServer, ensure_venv

VENV = Path(f"/tmp/prefect-{PREFECT_VERSION}-venv")


def one_round(target: str, prefect: Path, args: argparse.Namespace, figures: Figures) -> list:
    """Start one server (`eventsite` or `prefect`), run every scenario on it, stop it."""
    load = loadavg()
    figures.say(f"{target}, load average {' '.join(f'{x:.2f}' for x in load)}")
    home = None
    if target == "prefect":
        home = Path(tempfile.mkdtemp(prefix="prefectlive-"))
        server = PrefectServer(prefect, home)
    else:
        env, _ = bench_server_env(args)
        server = Server(env)
    try:
        runs = [
            {**r, "server": target, "load_1min": load[0]}
            for r in out_socket_scenarios(figures, server, args)
        ]
        peak = server.peak_rss_mb()
        for r in runs:
            r["server_peak_rss_mb"] = round(peak, 1)
    finally:
        server.remove()
        if home:
            shutil.rmtree(home, ignore_errors=True)
    return runs


def compare(args: argparse.Namespace) -> None:
    if args.redis_restart:
        raise SystemExit("--redis-restart does not apply to Prefect's server")
    figures = Figures("prefect_live")
    prefect = ensure_venv(VENV)
    figures.say(
        f"live: send → arrival on /api/events/out, eventsite vs Prefect {PREFECT_VERSION}'s own "
        f"server, {args.events} events per run, one every {args.interval * 1000:.0f} ms, "
        f"{args.prefect_subscribers} of the subscribers Prefect's get_events_subscriber, "
        f"{args.stalled} stalled"
    )
    runs = []
    for n in range(1, args.rounds + 1):
        for target in ("eventsite", "prefect"):
            for r in one_round(target, prefect, args, figures):
                runs.append({**r, "round": n})

    def dist(d: dict) -> str:
        return "—" if not d["n"] else f"{d['p50']:.1f} / {d['p95']:.1f} / {d['p99']:.1f}"

    figures.say()
    figures.say(
        "server    | round | sender  | subs | delivered     | send → raw socket p50/p95/p99 ms "
        "| send → Prefect subscriber ms | server CPU µs/delivery | load"
    )
    for r in runs:
        figures.say(
            f"{r['server']:9} | {r['round']:5} | {r['sender']:7} | {r['subscribers']:4} | "
            f"{r['delivered']:>6,}/{r['expected']:<6,} | {dist(r['send_to_arrival_ms']):>32} | "
            f"{dist(r['send_to_arrival_prefect_subscriber_ms']):>28} | "
            f"{r['serve_cpu_us_per_delivery']:>22} | {r['load_1min']:.2f}"
        )
    verdicts = []
    for ours in (r for r in runs if r["server"] == "eventsite"):
        theirs = next(
            r
            for r in runs
            if r["server"] == "prefect"
            and (r["round"], r["sender"], r["subscribers"])
            == (ours["round"], ours["sender"], ours["subscribers"])
        )
        a, b = ours["send_to_arrival_ms"], theirs["send_to_arrival_ms"]
        ok = bool(a["n"] and b["n"]) and a["p50"] <= b["p50"] and a["p95"] <= b["p95"]
        verdicts.append(
            {
                "round": ours["round"],
                "sender": ours["sender"],
                "subscribers": ours["subscribers"],
                "ours_p50_p95": [a["p50"], a["p95"]],
                "prefect_p50_p95": [b["p50"], b["p95"]],
                "ours_no_slower": ok,
                "ours_within_target": bool(a["n"]) and a["p50"] <= 10 and a["p95"] <= 50,
                "all_delivered": ours["missing"] == 0 and theirs["missing"] == 0,
            }
        )
        figures.say(
            f"round {ours['round']}, {ours['sender']} → {ours['subscribers']}: ours p50/p95 "
            f"{a['p50']} / {a['p95']} ms, Prefect's {b['p50']} / {b['p95']} ms: ours no slower: "
            f"{'yes' if ok else 'NO'}; target p50 ≤ 10, p95 ≤ 50: "
            f"{'met' if verdicts[-1]['ours_within_target'] else 'MISSED'}"
        )
    figures.update(prefect_version=PREFECT_VERSION, runs=runs, verdicts=verdicts)
    figures.finish()
