"""Every periodic service costs O(new work), not O(stored data) (issue 17): each query a pass
makes over the tables that grow with the log is an index search, on both databases.

The automations table itself may be read whole: it grows with configuration, not with traffic.
"""

from __future__ import annotations

import pytest

from automations.engine import Engine
from events import retention
from tests.automations.conftest import event, make_automation, store
from tests.plans import EVENTS, assert_searches, no_seqscan, plans_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_log():
    make_automation({"type": "event", "posture": "Proactive", "expect": ["acme.p"], "within": 60})
    make_automation({"type": "event", "posture": "Reactive", "expect": ["acme.r"]})
    store(*[event("acme.r" if i % 2 else "acme.p", f"acme.thing.{i}") for i in range(60)])
    engine = Engine()
    engine.load()
    while engine.step():
        pass
    return engine


def test_a_retention_pass_with_nothing_to_prune_searches_events_and_rollups(busy_log):
    with no_seqscan():
        assert_searches(plans_of(retention.prune, EVENTS))
        assert_searches(plans_of(retention.prune, "events_eventcount"), table="events_eventcount")
        requests = "events_webhookrequest"
        assert_searches(plans_of(retention.prune_webhook_requests, requests), table=requests)


@pytest.mark.parametrize(
    "table", ["automations_seenevent", "automations_actionrun", "automations_enginecursor"]
)
def test_an_engine_tick_and_due_run_check_search_what_grows_with_traffic(busy_log, table):
    def one_pass():
        busy_log.tick()
        busy_log.due_runs()

    with no_seqscan():
        assert_searches(plans_of(one_pass, table), table=table)
