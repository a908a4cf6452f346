"""Outbound calls go only where they should: no private addresses, few redirects, bounded answers."""

from __future__ import annotations

import time

import pytest

from automations.actions import outbound
from automations.models import ActionRun, Automation, Delivery
from tests.automations.actions.receivers import Receiver
from tests.automations.actions.test_actions import fire

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_a_loopback_target_is_refused_without_allow_private(clock, receiver, settings):
    settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE = ""

    run = fire({"type": "call-webhook", "url": receiver.url + "/hook"})

    assert run.status == ActionRun.Status.FAILED  # refused, not retried
    assert "127.0.0.1 is a loopback, link-local or private address" in run.last_error
    assert receiver.requests == []
    delivery = Delivery.objects.get()
    assert delivery.outcome == "failed" and "refused" in delivery.summary


def test_a_name_that_resolves_to_loopback_is_refused_after_resolution(clock, receiver, settings):
    settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE = ""
    port = receiver.url.rsplit(":", 1)[1]

    run = fire({"type": "call-webhook", "url": f"http://localhost:{port}/hook"})

    assert run.status == ActionRun.Status.FAILED
    assert "loopback, link-local or private" in run.last_error
    assert receiver.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ],
)
def test_link_local_private_and_mapped_addresses_are_refused(address, settings):
    settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE = ""
    with pytest.raises(outbound.Refused):
        outbound.check_address(address)


def test_public_addresses_pass_and_allowed_networks_open_private_ones(settings):
    settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE = ""
    outbound.check_address("93.184.216.34")
    outbound.check_address("2606:4700::1111")
    settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE = "10.0.0.0/8, 127.0.0.2/32"
    outbound.check_address("10.1.2.3")
    outbound.check_address("127.0.0.2")
    with pytest.raises(outbound.Refused):
        outbound.check_address("127.0.0.1")


def test_a_redirect_to_a_refused_address_is_not_followed(clock, settings):
    """The first hop (127.0.0.2) is allowed, the redirect target (127.0.0.1) is not."""
    settings.EVENTSITE_ACTIONS_ALLOW_PRIVATE = "127.0.0.2/32"
    inside = Receiver()
    door = Receiver(lambda r: (302, {"location": inside.url + "/admin"}, b""), host="127.0.0.2")
    try:
        run = fire({"type": "call-webhook", "url": door.url + "/hook"})
    finally:
        door.close()
        inside.close()

    assert len(door.requests) == 1
    assert inside.requests == []
    assert run.status == ActionRun.Status.FAILED
    assert "127.0.0.1 is a loopback" in run.last_error


def test_redirects_are_followed_up_to_the_limit_and_headers_stay_with_their_origin(
    clock, settings, allow_private
):
    settings.EVENTSITE_ACTIONS_MAX_REDIRECTS = 2
    final = Receiver()
    # Another origin (another port): the configured headers must not follow the redirect.
    hop = Receiver(lambda r: (307, {"location": final.url + "/end"}, b""))
    start = Receiver(lambda r: (307, {"location": hop.url + "/next"}, b""))
    try:
        run = fire(
            {
                "type": "call-webhook",
                "url": start.url + "/begin",
                "headers": {"Authorization": "Bearer only-for-start"},
                "payload": '{"a": 1}',
            }
        )
        assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
        assert start.requests[0]["headers"]["authorization"] == "Bearer only-for-start"
        assert "authorization" not in hop.requests[0]["headers"]
        assert final.requests[0]["method"] == "POST" and final.json() == {"a": 1}
        assert Delivery.objects.get().response["redirects"] == [hop.url, final.url]

        settings.EVENTSITE_ACTIONS_MAX_REDIRECTS = 1
        ActionRun.objects.all().delete()
        Automation.objects.all().delete()
        run = fire({"type": "call-webhook", "url": start.url + "/begin"})
        assert run.status == ActionRun.Status.FAILED
        assert "more than 1 redirects" in run.last_error
    finally:
        for r in (start, hop, final):
            r.close()


def test_a_large_answer_is_cut_at_the_cap(clock, settings, allow_private):
    settings.EVENTSITE_ACTIONS_MAX_RESPONSE_BYTES = 1000
    big = Receiver(lambda r: (200, {"content-type": "text/plain"}, b"x" * 5_000_000))
    try:
        run = fire({"type": "call-webhook", "url": big.url})
    finally:
        big.close()
    assert run.status == ActionRun.Status.SUCCEEDED
    delivery = Delivery.objects.get()
    assert delivery.response["truncated"] is True
    assert len(delivery.response["body"]) == 1000


def test_an_answer_that_never_ends_is_abandoned_at_the_deadline(clock, allow_private):
    slow = Receiver(lambda r: (200, {"content-type": "text/plain"}, b"y" * 100), drip=0.1)
    started = time.monotonic()
    try:
        run = fire({"type": "call-webhook", "url": slow.url, "timeout": 1})
    finally:
        slow.close()
    assert time.monotonic() - started < 5
    assert run.status == ActionRun.Status.PENDING  # retried later
    assert "timed out after 1 s" in run.last_error
