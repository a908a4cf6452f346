"""Shared pieces of the benchmarks: realistic events, a `serve` process, measuring, recording.

The benchmarks drive eventsite from outside (HTTP, websockets, `manage.py`, the clients), so they
keep working while the application's modules move. Every benchmark records its figures with
`Figures`: standalone runs write `bench/results/<UTC>-<commit>-<bench>.json` (+ `.txt`), runs under
`bench/run.py` hand them to it for one file per run.

The backend comes from the environment, like the app's: `EVENTSITE_DATABASE_URL` (a PostgreSQL
URL whose database each server recreates) and `EVENTSITE_REDIS_URL`; unset means SQLite and the
in-memory channel layer.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
QUICK = os.environ.get("BENCH_QUICK") == "1"

REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"]
KINDS = ["order", "payment", "shipment", "invoice", "flow-run", "deployment"]
VERBS = ["created", "updated", "completed", "failed", "cancelled", "retried"]
TAGS = [f"tag-{i}" for i in range(20)]


# --- events ----------------------------------------------------------------------------------------


def uuid7(at: datetime | None = None, rng: random.Random | None = None) -> uuid.UUID:
    """A time-ordered UUID (version 7), like the ids the Prefect client generates."""
    ms = int((at or datetime.now(UTC)).timestamp() * 1000)
    value = (ms & 0xFFFFFFFFFFFF) << 80 | (rng or random).getrandbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes).hex()


def make_event(rng: random.Random, occurred: datetime) -> dict:
    """A realistic event: 2–5 labels, 1–3 related resources, a ~300-byte payload.

    Everything comes from `rng` (the id too), so a seed and a time give the same events: two
    stores seeded alike hold the same rows (`tests/bench` compares the two PostgreSQL seeds)."""
    kind = rng.choice(KINDS)
    prefix = "prefect" if kind in ("flow-run", "deployment") else "acme"
    n = rng.randrange(100_000)
    resource = {
        "prefect.resource.id": f"{prefix}.{kind}.{n}",
        "prefect.resource.name": f"{kind.title()} {n}",
        "acme.region": rng.choice(REGIONS),
    }
    for i in range(rng.randrange(0, 3)):
        resource[f"acme.attr{i}"] = _hex(rng, 4)
    related = [
        {
            "prefect.resource.id": f"acme.customer.{rng.randrange(1000)}",
            "prefect.resource.role": "customer",
            "prefect.resource.name": f"Customer {rng.randrange(1000)}",
        }
    ]
    for tag in rng.sample(TAGS, rng.randrange(0, 3)):
        related.append(
            {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        )
    payload = {
        "amount": round(rng.random() * 1000, 2),
        "currency": "EUR",
        "attempt": rng.randrange(5),
        "message": " ".join(
            rng.choice(["order", "paid", "late", "gold", "retry", "ok", "error", "eu"])
            for _ in range(12)
        ),
        "trace": _hex(rng, 32),
    }
    return {
        "occurred": occurred.isoformat(),
        "event": f"{prefix}.{kind}.{rng.choice(VERBS)}",
        "resource": resource,
        "related": related,
        "payload": payload,
        "id": str(uuid7(occurred, rng)),
    }


def events_over(count: int, *, span: timedelta, end: datetime | None = None, seed: int = 7):
    """`count` events spread evenly (oldest first) over `span` ending at `end`."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    start = end - span
    step = span / max(count, 1)
    for i in range(count):
        yield make_event(rng, start + step * i)


# --- the machine, the commit, a process -------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def git_info() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    status = [line for line in git("status", "--short").splitlines() if line.strip()]
    return {
        "commit": git("rev-parse", "HEAD"),
        "short": git("rev-parse", "--short", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
        "status_short": status,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (robust to other load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_mb(pid: int, key: str) -> float:
    """A memory figure from /proc/<pid>/status in MB: VmRSS (now) or VmHWM (peak)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


class Sampler:
    """Call `read()` every `interval` seconds in a thread; keep the peak and the samples."""

    def __init__(self, read: Callable[[], float], interval: float = 0.1):
        self.read, self.interval = read, interval
        self.peak = 0.0
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        value = self.read()
        if value == value:  # not NaN
            self.peak = max(self.peak, value)
            self.samples.append((round(time.monotonic() - self._started, 2), value))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


def file_mb(path: Path) -> float:
    try:
        return path.stat().st_size / 1e6
    except FileNotFoundError:
        return 0.0


# --- figures -------------------------------------------------------------------------------------


def backend_name() -> str:
    return "PostgreSQL+Redis" if os.environ.get("EVENTSITE_DATABASE_URL") else "SQLite"


def run_metadata() -> dict:
    return {
        "git": git_info(),
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "backend": backend_name(),
        "quick": QUICK,
        "python": sys.version.split()[0],
    }


def results_path(meta: dict, suffix: str = "") -> Path:
    """`bench/results/<UTC>-<commit>[-suffix].json`; quick runs go to `results/quick/` (ignored)."""
    stamp = meta["utc"].replace("-", "").replace(":", "")
    where = RESULTS / "quick" if meta["quick"] else RESULTS
    where.mkdir(parents=True, exist_ok=True)
    return where / f"{stamp}-{meta['git']['short']}{'-' + suffix if suffix else ''}.json"


class Figures:
    """The figures of one benchmark: printed as they come, recorded at the end.

    `say()` prints a line of the summary; `figures[key] = value` records a number. Under
    `bench/run.py` (BENCH_FIGURES names a file) the record is appended there; standalone it is
    written to its own results file with the commit, load average and backend.
    """

    def __init__(self, bench: str):
        self.bench = bench
        self.values: dict = {}
        self.lines: list[str] = []
        self.meta = run_metadata()
        self.load_start = loadavg()
        self.started = time.monotonic()
        self.say(
            f"[{bench}] {self.meta['backend']}, {self.meta['cpus']} CPUs, load average "
            f"{' '.join(f'{x:.2f}' for x in self.load_start)} (1/5/15 min) at start"
        )

    def __setitem__(self, key: str, value) -> None:
        self.values[key] = value

    def __getitem__(self, key: str):
        return self.values[key]

    def update(self, **values) -> None:
        self.values.update(values)

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def finish(self) -> Path | None:
        load_end = loadavg()
        wall = time.monotonic() - self.started
        self.say(
            f"[{self.bench}] load average {' '.join(f'{x:.2f}' for x in load_end)} at end; "
            f"took {wall:.0f} s"
        )
        record = {
            "bench": self.bench,
            "load_start": self.load_start,
            "load_end": load_end,
            "wall_seconds": round(wall, 1),
            "figures": self.values,
            "summary": self.lines,
        }
        shared = os.environ.get("BENCH_FIGURES")
        if shared:
            with open(shared, "a") as f:
                f.write(json.dumps(record, default=str) + "\n")
            return None
        path = results_path(self.meta, self.bench)
        meta = {**self.meta, "load_start": self.load_start, "load_end": load_end}
        path.write_text(json.dumps({**meta, "benches": [record]}, indent=2, default=str) + "\n")
        path.with_suffix(".txt").write_text("\n".join(self.lines) + "\n")
        print(f"figures written to {path.relative_to(ROOT)}")
        return path


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary_ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms   p95 {percentile(values, 95) * 1000:7.1f} ms"


def distribution_ms(values_ms: list[float]) -> dict:
    """p50/p95/p99/max of latencies in milliseconds."""
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": round(percentile(values_ms, 50), 2),
        "p95": round(percentile(values_ms, 95), 2),
        "p99": round(percentile(values_ms, 99), 2),
        "max": round(max(values_ms), 2),
        "n": len(values_ms),
    }


def fmt_dist(d: dict) -> str:
    if not d["n"]:
        return "no samples"
    return f"p50 {d['p50']:7.1f} ms   p95 {d['p95']:7.1f} ms   p99 {d['p99']:7.1f} ms"


# --- a server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_batches(server: Server, bodies: list[bytes], clients: int) -> tuple[float, list[str]]:
    """POST each body to `/api/events` from `clients` threads, one connection each; the seconds
    from the first send to the last reply, and the replies that were not 204."""
    import httpx

    errors: list[str] = []

    def client(mine: list[bytes]) -> None:
        with httpx.Client(headers=server.headers, timeout=300) as http:
            for body in mine:
                response = http.post(f"{server.url}/api/events", content=body)
                if response.status_code != 204:
                    errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, errors


class RedisServer:
    """A redis-server of our own, on a free port, that a bench run or a test restarts at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1


def manage(*args: str, env: dict[str, str], capture: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


# One key for the processes of a benchmark run (they may share one PostgreSQL database).
BENCH_SECRET_KEY = secrets.token_urlsafe(50)


def bench_env(database_url: str | None = None, data_dir: str | None = None) -> dict[str, str]:
    """The environment of a `manage.py` process: our data dir, the given backend, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSITE_")}
    if not data_dir and database_url:
        # On PostgreSQL the data dir holds only the secret key, static files and serve.log.
        data_dir = str(ROOT / "var" / "bench-data" / "postgres-home")
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    env["EVENTSITE_DATA_DIR"] = data_dir or tempfile.mkdtemp(prefix="eventsite-bench-")
    env["EVENTSITE_LOG_LEVEL"] = os.environ.get("BENCH_SERVE_LOG_LEVEL", "WARNING")
    env["PYTHONPATH"] = str(ROOT)
    if database_url:
        env["EVENTSITE_DATABASE_URL"] = database_url
        # A shared database needs a shared secret key, or eventsite refuses to start.
        env["EVENTSITE_SECRET_KEY"] = os.environ.get("EVENTSITE_SECRET_KEY") or BENCH_SECRET_KEY
        if os.environ.get("EVENTSITE_REDIS_URL"):
            env["EVENTSITE_REDIS_URL"] = os.environ["EVENTSITE_REDIS_URL"]
    return env


def server_env(data_dir: str | None = None) -> dict[str, str]:
    """A fresh, empty store on the backend chosen by the environment (PostgreSQL is recreated)."""
    url = os.environ.get("EVENTSITE_DATABASE_URL")
    if url:
        fresh_postgres(url)
        flush_redis()
    return bench_env(url, data_dir)


def fresh_postgres(url: str, *, template: str | None = None) -> str:
    """Recreate the database named in `url` (optionally from a template) and return the URL."""
    import psycopg

    base, _, name = bench_database(url)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return url


def bench_database(url: str) -> tuple[str, str, str]:
    """Split a PostgreSQL URL; refuse a database the bench does not own (it drops it)."""
    base, sep, name = url.rpartition("/")
    # A branch's own prefix (EVENTSITE_BENCH_TEMPLATE, e.g. "partitions": partitions_bench and
    # its template partitions_<N>) is the bench's too.
    own = os.environ.get("EVENTSITE_BENCH_TEMPLATE")
    if not name.startswith("eventsite_bench") and not (own and name.startswith(f"{own}_")):
        raise SystemExit(
            f"the benchmarks drop and recreate their database: use eventsite_bench* "
            f"(or EVENTSITE_BENCH_TEMPLATE's prefix), not {name!r}"
        )
    return base, sep, name


def drop_postgres(url: str) -> None:
    import psycopg

    base, _, name = bench_database(url)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis() -> None:
    """Empty the bench's own Redis database (never 0 or 1: the tests use those)."""
    url = os.environ.get("EVENTSITE_REDIS_URL")
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url)
    if client.connection_pool.connection_kwargs.get("db", 0) in (0, 1):
        raise SystemExit(f"refusing to flush Redis DB 0/1 ({url}); use e.g. /5")
    client.flushdb()
    client.close()


class Server:
    """`manage.py serve` (engine on unless `engine=False`) on a free port, with a user + token.

    The database is migrated first; `extra_env` adds settings (e.g. a long retention over cached
    data); stderr goes to `<data dir>/serve.log` so a failing run can be read afterwards.
    """

    def __init__(self, env: dict[str, str], *, engine: bool = True, extra_env: dict | None = None):
        self.env = {**env, **(extra_env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.data_dir = Path(self.env["EVENTSITE_DATA_DIR"])
        manage("migrate", "-v0", env=self.env)
        manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; User.objects.filter(username='bench').exists() "
            "or User.objects.create_user('bench', password='bench-password-1')",
            env=self.env,
        )
        self.token = (
            manage("create_api_token", "bench", "--name", "bench", env=self.env)
            .strip()
            .splitlines()[-1]
        )
        self.log = open(self.data_dir / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        args = ["serve", "--port", str(self.port), "--no-first-run"]
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *args, *([] if engine else ["--no-engine"])],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.pid = self.process.pid
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log_tail()}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def peak_rss_mb(self) -> float:
        """VmHWM: the most resident memory the serve process has had since it started."""
        return proc_status_mb(self.pid, "VmHWM")

    def rss_mb(self) -> float:
        return proc_status_mb(self.pid, "VmRSS")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.data_dir / "serve.log").read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()

    def remove(self) -> None:
        """Stop, and delete a temporary data dir (never one under var/bench-data)."""
        self.stop()
        if str(self.data_dir).startswith(tempfile.gettempdir()):
            shutil.rmtree(self.data_dir, ignore_errors=True)


# --- automations through the API ---------------------------------------------------------------


def automation_bodies(count: int, *, seed: int = 3) -> list[dict]:
    """`count` automations in Prefect's REST shape: 3 in 4 reactive, 1 in 4 proactive.

    Reactive ones mix exact names, globs, label and related matches and thresholds; proactive
    ones expect an event within a window. All run `do-nothing`, so they cost evaluation only.
    """
    rng = random.Random(seed)
    bodies = []
    for i in range(count):
        kind = rng.choice(KINDS)
        prefix = "prefect" if kind in ("flow-run", "deployment") else "acme"
        name = f"{prefix}.{kind}.{rng.choice(VERBS)}"
        trigger: dict = {"type": "event", "posture": "Reactive", "expect": [name]}
        shape = i % 8
        if shape in (0, 1):
            trigger["match"] = {"prefect.resource.id": f"{prefix}.{kind}.{rng.randrange(10, 100)}*"}
        elif shape == 2:
            trigger["expect"] = [f"{prefix}.{kind}.*"]
            trigger["match"] = {"acme.region": rng.choice(REGIONS)}
            trigger["match_related"] = {
                "prefect.resource.role": "customer",
                "prefect.resource.id": f"acme.customer.{rng.randrange(1000)}",
            }
        elif shape == 3:
            trigger.update(for_each=["prefect.resource.id"], threshold=3, within=60)
        elif shape == 4:
            trigger.update(match={"acme.region": f"!{rng.choice(REGIONS)}"}, threshold=5, within=30)
        else:  # 5 narrows by resource; 6 and 7 are proactive: "expect this within a window, or fire"
            if shape in (6, 7):
                trigger.update(posture="Proactive", within=60 + 30 * rng.randrange(4))
            else:
                trigger["match"] = {"prefect.resource.id": f"{prefix}.{kind}.{rng.randrange(1000)}"}
        bodies.append(
            {
                "name": f"bench {i} {trigger['posture'].lower()}",
                "enabled": True,
                "trigger": trigger,
                "actions": [{"type": "do-nothing"}],
            }
        )
    return bodies


def create_automations(server: Server, count: int) -> dict:
    """Create `count` automations through `POST /api/automations/`; return how many of each."""
    import httpx

    made = {"Reactive": 0, "Proactive": 0}
    with httpx.Client(headers=server.headers, timeout=60) as http:
        for body in automation_bodies(count):
            response = http.post(f"{server.url}/api/automations/", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"automation refused: {response.status_code} {response.text}")
            made[body["trigger"]["posture"]] += 1
    return made
