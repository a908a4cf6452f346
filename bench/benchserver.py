"""A throwaway `manage.py serve` for the benchmarks: fresh data dir, free port, one API token."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchServer:
    """Start with `with BenchServer() as server:`; `server.url`, `server.token`, `server.peak_rss_mb()`.

    SQLite in a fresh temporary data dir unless EVENTSITE_DATABASE_URL is set in the environment.
    """

    def __init__(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="eventsite-bench-")
        self.env = {
            **os.environ,
            "EVENTSITE_DATA_DIR": self.data_dir,
            "EVENTSITE_LOG_LEVEL": "WARNING",
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.token = ""

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def __enter__(self) -> BenchServer:
        self.manage("migrate", "-v0")
        self.token = (
            self.manage(
                "shell",
                "-c",
                "from django.contrib.auth import get_user_model\n"
                "from events.models import ApiToken\n"
                "user, _ = get_user_model().objects.get_or_create(username='bench')\n"
                "print(ApiToken.issue(user, 'bench')[1])",
            )
            .strip()
            .splitlines()[-1]
        )
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--port", str(self.port), "--no-first-run"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode()[-2000:])
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start within 60 s")
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def count(self, prefix: str, client: httpx.Client | None = None) -> int:
        """How many stored events have a name starting with `prefix` (what a query sees)."""
        post = (client or httpx).post
        response = post(
            f"{self.url}/api/events/filter",
            json={"filter": {"event": {"prefix": [prefix]}}, "limit": 0},
            headers=self.headers,
            timeout=60,
        )
        response.raise_for_status()
        return response.json()["total"]

    def peak_rss_mb(self) -> float:
        """The serve process's peak resident set size so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def size_from_args(default: int, env: str) -> int:
    """The benchmark size: the first command-line argument, else the env variable, else default."""
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        return int(sys.argv[1])
    return int(os.environ.get(env, default))
