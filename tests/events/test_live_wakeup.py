"""Waiters of another process woken through a shared channel layer (SQLite with `run_engine`).

On PostgreSQL a waiter LISTENs (tests/automations/test_engine_idle.py); on SQLite with a shared
Redis layer it follows the `events` group, so a separate engine process is woken by the web
process's commits instead of waiting for its safety poll.
"""

from __future__ import annotations

import shutil
import threading

import pytest
from django.db import connection

from events import wakeup
from tests.conftest import store_in_another_process

pytestmark = [
    pytest.mark.skipif(connection.vendor == "postgresql", reason="PostgreSQL waiters LISTEN"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.mark.django_db(transaction=True)
def test_a_store_in_another_process_wakes_a_waiter_through_the_channel_layer(
    live_server_env, own_redis, settings
):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [own_redis.url]},
        }
    }
    stop = threading.Event()
    waiter = wakeup.Wakeup(stop)
    try:
        assert waiter.listening(10)
        waiter.wait(0)  # the wake-up every (re)join gives
        assert waiter.wait(0.2) is False
        store_in_another_process(
            {**live_server_env, "EVENTSITE_REDIS_URL": own_redis.url},
            "acme.wake.ping",
            "acme.thing.other",
        )
        # The safety poll is not involved: `wait` returns False when nothing woke it.
        assert waiter.wait(30) is True
    finally:
        stop.set()
        waiter.close()


@pytest.mark.django_db(transaction=True)
def test_a_waiter_on_the_in_memory_layer_keeps_to_its_own_process(settings):
    """No group to follow (it would wake the waiter as it joined): the safety poll stays."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    stop = threading.Event()
    waiter = wakeup.Wakeup(stop)
    try:
        assert waiter.wait(0.2) is False
    finally:
        stop.set()
        waiter.close()
