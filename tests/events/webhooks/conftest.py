"""Fixtures of the webhook tests."""

from __future__ import annotations

import pytest

from tests.events.webhooks.ways import FastWay, ViewWay, Way


@pytest.fixture(params=["view", pytest.param("fast", marks=pytest.mark.live)])
def way(request) -> Way:
    """Each way in, in turn. Tests using it commit their data (a server process must see it):
    mark them `django_db(transaction=True)`."""
    if request.param == "view":
        return ViewWay(request.getfixturevalue("client"))
    return FastWay(request.getfixturevalue("server"))
