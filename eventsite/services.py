"""Background services that `manage.py serve` runs beside the web server, each in a thread.

A service is a function that runs until the `threading.Event` it is given is set. Most run in
every process that starts them. A service marked `once_per_deployment` runs in one process of the
whole deployment at a time, however many web processes there are: each process keeps a standby
thread that takes the service's deployment-wide lock (`eventsite.locks`) when it is free, runs the
service while it holds it, and stops it if the lock is lost. When the holder stops or crashes,
a standby takes over within `EVENTSITE_SERVICE_LOCK_POLL`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection

from eventsite.locks import DeploymentLock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    name: str
    target: str  # "module:function", the function taking a threading.Event to stop on
    engine: bool = False  # part of the automation engine: left out by `serve --no-engine`
    once_per_deployment: bool = False  # one process of the deployment at a time (see above)
    sqlite_only: bool = False  # started only when the database is SQLite

    def load(self) -> Callable[[threading.Event], None]:
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)

    @property
    def lock_name(self) -> str:
        return f"service:{self.name}"


SERVICES = [
    Service("retention", "events.retention:run_forever", once_per_deployment=True),
    Service(
        "sqlite-wal", "eventsite.sqlite_wal:run_forever", once_per_deployment=True, sqlite_only=True
    ),
    # The engine elects its own leader per cursor (automations.engine), so it is not marked here.
    Service("automation-engine", "automations.engine:run_forever", engine=True),
]


def run(service: Service, stop: threading.Event, *, poll: float | None = None) -> None:
    """Run `service` until `stop` is set: directly, or while holding its deployment lock."""
    if not service.once_per_deployment:
        service.load()(stop)
        return
    poll = settings.EVENTSITE_SERVICE_LOCK_POLL.total_seconds() if poll is None else poll
    lock = DeploymentLock(service.lock_name)
    standing_by = False
    try:
        while not stop.is_set():
            try:
                got = lock.acquire()
            except Exception:
                logger.exception("service %s: could not ask for its lock; will retry", service.name)
                got = False
            finally:
                close_old_connections()
            if got:
                standing_by = False
                _run_holding(service, lock, stop, poll)
            else:
                log = logger.debug if standing_by else logger.info
                log("service %s: runs in another process; standing by", service.name)
                standing_by = True
            stop.wait(poll)
    finally:
        lock.release()


def _run_holding(
    service: Service, lock: DeploymentLock, stop: threading.Event, poll: float
) -> None:
    """Run the service in a thread of its own while this process holds its lock."""
    logger.info("service %s: running here (this process holds its deployment lock)", service.name)
    inner = threading.Event()
    thread = threading.Thread(
        target=service.load(),
        args=(inner,),
        name=f"{threading.current_thread().name}-running",
        daemon=True,
    )
    thread.start()
    try:
        while not stop.wait(poll):
            if not thread.is_alive():
                logger.error("service %s: stopped on its own; giving up its lock", service.name)
                break
            if not lock.held():
                logger.warning("service %s: lost its deployment lock; stopping", service.name)
                break
    finally:
        inner.set()
        thread.join()
        lock.release()


def start(*, engine: bool = True) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = []
    for service in SERVICES:
        if service.engine and not engine:
            continue
        if service.sqlite_only and connection.vendor != "sqlite":
            continue
        thread = threading.Thread(target=run, args=(service, stop), name=service.name, daemon=True)
        thread.start()
        threads.append(thread)
        once = " (once per deployment)" if service.once_per_deployment else ""
        logger.info("started background service %s%s", service.name, once)
    return stop, threads
