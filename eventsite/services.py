"""Background services that `manage.py serve` runs beside the web server, each in a thread."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    name: str
    target: str  # "module:function", the function taking a threading.Event to stop on
    engine: bool = False  # part of the automation engine: left out by `serve --no-engine`

    def load(self) -> Callable[[threading.Event], None]:
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)


SERVICES = [
    Service("retention", "events.retention:run_forever"),
    Service("automation-engine", "automations.engine:run_forever", engine=True),
]


def start(*, engine: bool = True) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = []
    for service in SERVICES:
        if service.engine and not engine:
            continue
        thread = threading.Thread(
            target=service.load(), args=(stop,), name=service.name, daemon=True
        )
        thread.start()
        threads.append(thread)
        logger.info("started background service %s", service.name)
    return stop, threads
