"""Background services: a once-per-deployment service runs in one process at a time.

Each `services.run` below stands for one process's standby thread; on PostgreSQL each holds
its lock on a connection of its own, on SQLite on a file of its own, as separate processes do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from eventsite import services
from eventsite.services import Service

pytestmark = pytest.mark.django_db(transaction=True)

POLL = 0.02
_state = threading.Condition()
running: list[str] = []  # runner thread names, while their service runs
ran: list[str] = []  # every start, in order


def counting_service(stop: threading.Event) -> None:
    """A service that records where it runs (the name of its thread)."""
    name = threading.current_thread().name
    with _state:
        running.append(name)
        ran.append(name)
        _state.notify_all()
    stop.wait()
    with _state:
        running.remove(name)
        _state.notify_all()


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with _state:
        while not condition():
            left = deadline - time.monotonic()
            assert left > 0, "condition not reached in time"
            _state.wait(min(left, 0.05))


@pytest.fixture(autouse=True)
def _clean():
    running.clear()
    ran.clear()


def start_runner(service: Service, name: str) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(
        target=services.run, args=(service, stop), kwargs={"poll": POLL}, name=name
    )
    thread.start()
    return stop, thread


def test_a_once_per_deployment_service_runs_in_one_process_and_another_takes_over(caplog):
    service = Service(
        "deploy-test-once",
        "tests.eventsite.test_services:counting_service",
        once_per_deployment=True,
    )
    caplog.set_level(logging.DEBUG, logger="eventsite.services")
    runners = {name: start_runner(service, name) for name in ("runner-a", "runner-b")}
    try:
        wait_until(lambda: len(running) == 1)
        # The service runs in a thread the holding runner started for it.
        holder = running[0].removesuffix("-running")
        standby = "runner-b" if holder == "runner-a" else "runner-a"

        def standbys() -> int:
            return sum("standing by" in r.getMessage() for r in caplog.records)

        # The other runner keeps asking for the lock while the first one holds it, in vain.
        seen = standbys()
        wait_until(lambda: standbys() >= seen + 3)
        assert running == [f"{holder}-running"]

        stop, thread = runners.pop(holder)
        stop.set()
        thread.join(10)
        wait_until(lambda: running == [f"{standby}-running"])
        assert ran == [f"{holder}-running", f"{standby}-running"]
    finally:
        for stop, thread in runners.values():
            stop.set()
            thread.join(10)
    assert running == []


def test_a_plain_service_runs_in_every_process():
    service = Service("deploy-test-each", "tests.eventsite.test_services:counting_service")
    runners = [start_runner(service, name) for name in ("runner-a", "runner-b")]
    try:
        wait_until(lambda: sorted(running) == ["runner-a", "runner-b"])
    finally:
        for stop, thread in runners:
            stop.set()
            thread.join(10)


def test_retention_is_a_once_per_deployment_service_and_the_engine_elects_its_own_leader():
    by_name = {s.name: s for s in services.SERVICES}
    assert by_name["retention"].once_per_deployment
    assert not by_name["automation-engine"].once_per_deployment
