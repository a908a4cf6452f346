"""What the events tests share: a redis-server of a test's own."""

from __future__ import annotations

import pytest

from bench.common import RedisServer


@pytest.fixture
def own_redis():
    server = RedisServer()
    server.start()
    yield server
    server.stop()
