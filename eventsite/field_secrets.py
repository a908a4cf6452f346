"""Secret settings at rest: sealed with Fernet, written but never shown.

Some settings are credentials: an action's `Authorization` header, a Slack or Discord webhook URL
(the URL is the credential), a PagerDuty routing key, a webhook's verification key. They are
stored *sealed* (`seal`): a string `sealed:v1:<Fernet token>`. Because a sealed value says by
itself that it is secret, stored JSON (an automation's actions) needs no schema to be cleaned:

- `redact` replaces every sealed value with `REDACTED` (API answers, `prefect.automation.*`
  events, template contexts);
- `fingerprinted` replaces it with `[secret <fingerprint>]`, a short keyed hash of the clear
  value (audit diffs: "changed", and whether two versions are the same, without the value);
- `reveal` opens one value for the code that uses it (the action, the signature check).

A client that reads a secret gets `REDACTED` and may send it back unchanged to mean "keep the
stored value" (what Prefect's client does when it round-trips an automation).

Keys: `EVENTSITE_FIELD_KEY` (any string; by default derived from the Django secret key) is
stretched with SHA-256 into the Fernet key. To rotate: put the new key in `EVENTSITE_FIELD_KEY`,
the previous one(s) in `EVENTSITE_FIELD_KEY_OLD` (whitespace-separated), run
`manage.py reseal_secrets` (re-encrypts every stored secret under the new key), then drop the old
key. Values sealed under a key that is no longer configured cannot be read: the action or check
that needs them fails with a message that says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

PREFIX = "sealed:v1:"
# What an API answer, a form or an event shows instead of a secret (Prefect's SecretStr shows
# the same); sent back unchanged, it keeps the stored value.
REDACTED = "**********"


class SecretUnreadable(ValueError):
    """A sealed value that none of the configured keys opens."""


def _fernet_key(material: str) -> bytes:
    digest = hashlib.sha256(b"eventsite field key\0" + material.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=8)
def _box(current: str, old: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in (current, *old)])


@lru_cache(maxsize=8)
def _fingerprint_key(current: str) -> bytes:
    return hashlib.sha256(b"eventsite fingerprint\0" + current.encode()).digest()


def _keys() -> tuple[str, tuple[str, ...]]:
    old = settings.EVENTSITE_FIELD_KEY_OLD
    if isinstance(old, str):
        old = old.split()
    return settings.EVENTSITE_FIELD_KEY or settings.SECRET_KEY, tuple(old)


def box() -> MultiFernet:
    """The current key first (it seals), then the old ones (they still open)."""
    return _box(*_keys())


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(value: str) -> str:
    """Encrypt `value` under the current key; a value that is already sealed stays as it is."""
    if is_sealed(value):
        return value
    return PREFIX + box().encrypt(value.encode()).decode()


def reveal(value: Any) -> Any:
    """The clear text of a sealed value (anything else is returned as it is)."""
    if not is_sealed(value):
        return value
    try:
        return box().decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "a stored secret cannot be decrypted with the configured field key "
            "(EVENTSITE_FIELD_KEY changed? put the previous key in EVENTSITE_FIELD_KEY_OLD)"
        ) from None


def reseal(value: str) -> str:
    """The same secret, encrypted under the current key (for key rotation)."""
    if not is_sealed(value):
        return value
    try:
        return PREFIX + box().rotate(value[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("a stored secret cannot be decrypted to re-seal it") from None


def fingerprint(value: Any) -> str:
    """8 hex digits of an HMAC of the clear value: equal values, equal fingerprints."""
    if value in (None, ""):
        return ""
    if is_sealed(value):
        try:
            value = reveal(value)
        except SecretUnreadable:
            return "unreadable"
    key = _fingerprint_key(_keys()[0])
    return hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:8]


def _walk(value: Any, leaf) -> Any:
    if isinstance(value, str):
        return leaf(value) if is_sealed(value) else value
    if isinstance(value, dict):
        return {k: _walk(v, leaf) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, leaf) for v in value]
    return value


def redact(value: Any) -> Any:
    """`value` (JSON) with every sealed string replaced by `REDACTED`."""
    return _walk(value, lambda _: REDACTED)


def fingerprinted(value: Any) -> Any:
    """`value` (JSON) with every sealed string replaced by `[secret <fingerprint>]`."""
    return _walk(value, lambda s: f"[secret {fingerprint(s)}]")


def resealed(value: Any) -> Any:
    """`value` (JSON) with every sealed string re-encrypted under the current key."""
    return _walk(value, reseal)


def sealed_values(value: Any) -> Iterable[str]:
    """Every sealed string inside `value` (JSON)."""
    if is_sealed(value):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from sealed_values(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from sealed_values(v)


def has_sealed(value: Any) -> bool:
    return next(iter(sealed_values(value)), None) is not None


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of a clear secret replaced by `REDACTED`.

    The last line of defence for text that came back from elsewhere (a response body that
    echoes a header, an error message that quotes a URL) before it is stored or shown.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def scrub_all(value: Any, secrets: Iterable[str]) -> Any:
    """`scrub` every string inside a JSON value (keys too)."""
    secrets = list(secrets)
    if not secrets:
        return value
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {scrub(str(k), secrets): scrub_all(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_all(v, secrets) for v in value]
    return value


class SecretTextField(models.TextField):
    """A text column stored sealed; the model attribute holds the clear value.

    A value that cannot be decrypted (the key changed) stays sealed in memory, so saving the
    row keeps it instead of destroying it; whoever uses it gets `SecretUnreadable` from
    `reveal`.
    """

    def from_db_value(self, value, expression, connection):
        if not is_sealed(value):
            return value
        try:
            return reveal(value)
        except SecretUnreadable:
            return value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return seal(value)
