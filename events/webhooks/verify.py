"""Does a request come from the webhook's sender? Bearer tokens and signed bodies.

A webhook may ask each request to prove itself beyond knowing the URL (`Webhook.verification`):

- `bearer`: `Authorization: Bearer <secret>`;
- `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (GitHub's form);
- `stripe`: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (Stripe's
  form): the timestamp must be within `signature_tolerance` seconds of now, and a signature is
  accepted once (`claim`: a replay inside the tolerance is refused, one outside is too old);
- `hmac`: any header, HMAC of the body with SHA-256/512 or SHA-1, hex or base64, after an
  optional prefix.

Comparisons are constant-time. A failed check is answered 401 with the reason, logged in the
request log, and stores no event; the credential headers are never in the log, a template or an
event (`receive.Incoming` keeps them apart).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from events.webhooks.models import Webhook, WebhookNonce
from eventsite.field_secrets import is_sealed

Verification = Webhook.Verification
GITHUB_HEADER = "x-hub-signature-256"
STRIPE_HEADER = "stripe-signature"
# Headers that carry a credential for some verification kind; never logged or templated.
CREDENTIAL_HEADERS = frozenset({"authorization", GITHUB_HEADER, "x-hub-signature", STRIPE_HEADER})


@dataclass
class Nonce:
    """A signature to remember until `expires`, so that it is accepted only once."""

    webhook_id: object
    digest: str
    expires: datetime


@dataclass
class Check:
    ok: bool
    reason: str = ""
    nonce: Nonce | None = None


def signature_header(webhook: Webhook) -> str | None:
    """The header (lower case) that carries this webhook's credential, if it has one."""
    if webhook.verification == Verification.BEARER:
        return "authorization"
    if webhook.verification == Verification.GITHUB:
        return GITHUB_HEADER
    if webhook.verification == Verification.STRIPE:
        return STRIPE_HEADER
    if webhook.verification == Verification.HMAC:
        return (webhook.signature_header or "").strip().lower() or None
    return None


def _digest(webhook: Webhook, key: bytes, message: bytes) -> bytes:
    algorithm = getattr(hashlib, webhook.signature_algorithm or "sha256")
    return hmac.new(key, message, algorithm).digest()


def check(
    webhook: Webhook, headers: dict[str, str], body: bytes, *, now: float | None = None
) -> Check:
    """Verify one request's credential (`headers`: every header, lower-case names)."""
    kind = webhook.verification
    if kind in ("", Verification.NONE):
        return Check(True)
    secret = webhook.verification_secret or ""
    if not secret or is_sealed(secret):
        # No key, or one sealed under a field key that is no longer configured.
        return Check(False, "This webhook's verification key is not usable; set it again.")
    key = secret.encode()
    name = signature_header(webhook)
    value = (headers.get(name or "") or "").strip()
    if not value:
        return Check(False, f"Missing the {name} header this webhook requires.")
    if kind == Verification.BEARER:
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key):
            return Check(False, "The bearer token is not valid.")
        return Check(True)
    if kind == Verification.GITHUB:
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(value.encode(), expected.encode()):
            return Check(False, "The X-Hub-Signature-256 signature does not match the body.")
        return Check(True)
    if kind == Verification.STRIPE:
        return _stripe(webhook, key, value, body, now if now is not None else time.time())
    return _generic(webhook, key, value, body)


def _stripe(webhook: Webhook, key: bytes, value: str, body: bytes, now: float) -> Check:
    parts: dict[str, list[str]] = {}
    for item in value.split(","):
        name, _, part = item.strip().partition("=")
        parts.setdefault(name, []).append(part)
    try:
        timestamp = int(parts.get("t", [""])[0])
    except ValueError:
        return Check(False, "The Stripe-Signature header has no valid timestamp (t=…).")
    signatures = parts.get("v1", [])
    if not signatures:
        return Check(False, "The Stripe-Signature header has no v1 signature.")
    tolerance = webhook.signature_tolerance
    if abs(now - timestamp) > tolerance:
        return Check(False, f"The signed timestamp is more than {tolerance} s from now.")
    expected = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    match = next(
        (s for s in signatures if hmac.compare_digest(s.encode(), expected.encode())), None
    )
    if match is None:
        return Check(False, "No Stripe-Signature v1 signature matches the body.")
    digest = hashlib.sha256(f"{timestamp}.{match}".encode()).hexdigest()
    expires = datetime.fromtimestamp(timestamp + tolerance, tz=timezone.get_current_timezone())
    return Check(True, nonce=Nonce(webhook.id, digest, expires))


def _generic(webhook: Webhook, key: bytes, value: str, body: bytes) -> Check:
    prefix = webhook.signature_prefix or ""
    if prefix:
        if not value.startswith(prefix):
            return Check(
                False, f"The {webhook.signature_header} header must start with {prefix!r}."
            )
        value = value[len(prefix) :]
    digest = _digest(webhook, key, body)
    try:
        if webhook.signature_encoding == Webhook.Encoding.BASE64:
            given = base64.b64decode(value, validate=True)
        else:
            given = bytes.fromhex(value)
    except (binascii.Error, ValueError):
        return Check(False, f"The {webhook.signature_header} header is not a valid signature.")
    if not hmac.compare_digest(given, digest):
        return Check(False, f"The {webhook.signature_header} signature does not match the body.")
    return Check(True)


def claim(nonce: Nonce) -> bool:
    """Remember a signature; False when it was seen before (a replay)."""
    now = timezone.now()
    WebhookNonce.objects.filter(webhook_id=nonce.webhook_id, expires__lt=now).delete()
    try:
        with transaction.atomic():
            WebhookNonce.objects.create(
                webhook_id=nonce.webhook_id, digest=nonce.digest, expires=nonce.expires
            )
    except IntegrityError:
        return False
    return True


def sign_stripe(secret: str, body: bytes, timestamp: int) -> str:
    """A `Stripe-Signature` value for `body` (for the test panel's hints and tests)."""
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={signature.hexdigest()}"


def unusable_key(webhook: Webhook) -> bool:
    """The verification key cannot be read (sealed under a key no longer configured)."""
    return is_sealed(webhook.verification_secret)
