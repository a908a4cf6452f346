"""Signed and authenticated webhooks, through both ways in (the view and the fast path).

A request that fails the check is answered 401, kept in the request log, and stores no event;
no credential (slug, token, signature) is ever written into an event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from events.models import Event, Webhook, WebhookRequest
from events.webhooks.verify import sign_stripe

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATE = (
    '{"event": "shop.order.{{ body.action }}", "resource": {"prefect.resource.id": '
    '"shop.order.{{ body.id }}"}}'
)
BODY = json.dumps({"action": "paid", "id": 7}).encode()
KEY = "whsec_s3cr3t-signing-key"


def webhook(**fields) -> Webhook:
    return Webhook.objects.create(name="shop", template=TEMPLATE, verification_secret=KEY, **fields)


def stored(name: str) -> list[Event]:
    return list(Event.objects.filter(event=name))


def assert_no_credential_in_events(*credentials: str) -> None:
    text = json.dumps([e.to_wire() for e in Event.objects.all()], default=str)
    for credential in credentials:
        assert credential not in text


def assert_refused(answer, reason: str) -> None:
    assert answer.status == 401, answer
    assert reason in answer.body["detail"]
    assert not Event.objects.exists()  # no event, and no notice either
    row = WebhookRequest.objects.latest("received")
    assert row.outcome == "unauthorized" and row.status == 401 and not row.replayable


def test_a_bearer_token_is_required_and_checked(way):
    hook = webhook(verification="bearer")
    url = f"/hooks/{hook.slug}"

    missing = way.send(url, content=BODY)
    assert_refused(missing, "Missing the authorization header")
    wrong = way.send(url, content=BODY, headers={"Authorization": "Bearer nope"})
    assert_refused(wrong, "The bearer token is not valid")
    good = way.send(url, content=BODY, headers={"Authorization": f"Bearer {KEY}"})

    assert good.status == 204
    [event] = stored("shop.order.paid")
    assert "authorization" not in event.payload["headers"]
    assert WebhookRequest.objects.count() == 3
    assert all("authorization" not in row.headers for row in WebhookRequest.objects.all())
    assert_no_credential_in_events(KEY, hook.slug)


def test_github_signatures_are_checked_against_the_body(way):
    hook = webhook(verification="github")
    signature = "sha256=" + hmac.new(KEY.encode(), BODY, hashlib.sha256).hexdigest()
    url = f"/hooks/{hook.slug}"

    tampered = way.send(
        url, content=BODY.replace(b"7", b"8"), headers={"X-Hub-Signature-256": signature}
    )
    assert_refused(tampered, "does not match the body")
    good = way.send(url, content=BODY, headers={"X-Hub-Signature-256": signature})

    assert good.status == 204
    [event] = stored("shop.order.paid")
    assert "x-hub-signature-256" not in event.payload["headers"]
    assert_no_credential_in_events(signature.removeprefix("sha256="), KEY, hook.slug)


def test_stripe_signatures_need_a_fresh_timestamp_and_are_accepted_once(way):
    hook = webhook(verification="stripe", signature_tolerance=300)
    url = f"/hooks/{hook.slug}"
    now = int(time.time())
    header = sign_stripe(KEY, BODY, now)

    first = way.send(url, content=BODY, headers={"Stripe-Signature": header})
    assert first.status == 204, first
    replayed = way.send(url, content=BODY, headers={"Stripe-Signature": header})
    assert replayed.status == 401
    assert "already accepted" in replayed.body["detail"]
    old = way.send(
        url, content=BODY, headers={"Stripe-Signature": sign_stripe(KEY, BODY, now - 301)}
    )
    assert old.status == 401 and "more than 300 s from now" in old.body["detail"]
    forged = way.send(
        url, content=BODY, headers={"Stripe-Signature": sign_stripe("whsec_other", BODY, now)}
    )
    assert (
        forged.status == 401 and "No Stripe-Signature v1 signature matches" in forged.body["detail"]
    )

    assert len(stored("shop.order.paid")) == 1
    assert [r.status for r in WebhookRequest.objects.order_by("received")] == [204, 401, 401, 401]
    assert_no_credential_in_events(header.split("v1=")[1], KEY, hook.slug)


def test_a_generic_header_hmac_in_base64_with_a_prefix(way):
    hook = webhook(
        verification="hmac",
        signature_header="X-Shop-Signature",
        signature_algorithm="sha512",
        signature_encoding="base64",
        signature_prefix="v1=",
    )
    digest = hmac.new(KEY.encode(), BODY, hashlib.sha512).digest()
    signature = "v1=" + base64.b64encode(digest).decode()
    url = f"/hooks/{hook.slug}"

    unprefixed = way.send(url, content=BODY, headers={"X-Shop-Signature": signature[3:]})
    assert_refused(unprefixed, "must start with 'v1='")
    good = way.send(url, content=BODY, headers={"X-Shop-Signature": signature})

    assert good.status == 204
    [event] = stored("shop.order.paid")
    # The webhook's own signature header is a credential too: not in the event or the log.
    assert "x-shop-signature" not in event.payload["headers"]
    assert all("x-shop-signature" not in r.headers for r in WebhookRequest.objects.all())
    assert_no_credential_in_events(signature[3:], KEY, hook.slug)


def test_failed_notices_carry_no_slug(way):
    hook = webhook()
    answer = way.send(f"/hooks/{hook.slug}?x=1", content=b'{"action": "a"}')
    assert answer.status == 400  # strict: body.id is undefined
    [failed] = stored("prefect-cloud.webhook.failed")
    assert "path" not in failed.payload
    assert failed.payload["query"] == "x=1"
    assert_no_credential_in_events(hook.slug)
