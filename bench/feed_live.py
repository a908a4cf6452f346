"""Feed live latency: from the client's send to the row arriving on the feed page's `/ws/feed/`
sockets (issue 11 targets).

    .venv/bin/python -m bench.feed_live [--subscribers 50 500] [--senders prefect sdk ws rest]
                                        [--events 200] [--interval 0.05]

Like `bench/live.py`, with logged-in feed sockets (`/ws/feed/?event=<prefix>*`, the session of a
real login) instead of API subscribers: each row pushed carries `id="ev-<id>"`, and its arrival is
timed against the sender's clock just before the send call. Reports p50/p95/p99, delivered vs
expected (must be all), server CPU per delivered row, and for the `rest` sender also the old
"from the REST reply" figure. `--redis-restart` as in `bench/live.py`. Targets (issue 11):
p50 ≤ 10 ms, p95 ≤ 50 ms, none missed.
"""

from __future__ import annotations

import httpx

from bench.common import Figures, Server
from bench.live import SENDERS, arguments, bench_server_env, every_scenario, record_runs


def login(base: str) -> str:
    with httpx.Client(base_url=base) as http:
        http.get("/accounts/login/")
        response = http.post(
            "/accounts/login/",
            data={
                "username": "bench",
                "password": "bench-password-1",
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
        )
        assert response.status_code == 302, response.text[:300]
        return http.cookies["sessionid"]


def main() -> None:
    args = arguments(SENDERS)
    figures = Figures("feed_live")
    env, redis = bench_server_env(args)
    server = Server(env)
    try:
        session = login(server.url)
        figures.say(
            f"feed live: send → row on /ws/feed/ sockets, {args.events} events per run, one every "
            f"{args.interval * 1000:.0f} ms, serve with the engine on"
        )
        runs = every_scenario(
            figures,
            server,
            args,
            socket_kind="feed",
            socket_url=f"{server.ws_url}/ws/feed/",
            secret=session,
            redis=redis,
        )
        record_runs(figures, server, runs)
    finally:
        server.remove()
        if redis:
            redis.stop()
    figures.finish()


if __name__ == "__main__":
    main()
