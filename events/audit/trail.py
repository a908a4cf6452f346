"""The audit log: who did what, as events stored through the one write path (`ingest.emit`).

Call `record(...)` for any security-relevant change:

    audit.record(audit.WEBHOOK_UPDATED, target=webhook, request=request,
                 before=before, after=audit.snapshot(webhook))

Every audit event names its target as the primary resource, the person (and API token) who acted
as related resources with roles `actor` / `api-token`, and carries in its payload the actor
(user, token name, IP, user agent), the target and, for changes, a `changes` diff
(`{field: {"before": …, "after": …}}`). Secrets (passwords, token digests, webhook slugs and
verification keys, and every sealed value inside a JSON field such as an automation's action
headers, Slack URLs and routing keys) are never shown, only `[redacted <fingerprint>]` /
`[secret <fingerprint>]`: a short keyed hash of the clear value that tells whether it changed.

Audit events have names listed in `AUDIT_EVENTS`: `/audit/` shows those, and retention keeps them
for `EVENTSITE_AUDIT_RETENTION` instead of the event retention.

Sign-ins, sign-outs, failed sign-ins, API tokens and changes made in the Django admin are
recorded by the signal handlers in `events.audit.signals`; pages and APIs call `record` for the
rest. `events.audit.middleware.CurrentRequestMiddleware` makes the current request available to
those handlers, so `request` may be left out of `record` inside a request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import HttpRequest

from events import schema
from events.accounts.models import ApiToken
from events.audit.scope import current_request
from events.ingest import emit
from events.schema import RESOURCE_ID, RESOURCE_ROLE
from eventsite import field_secrets

USER_LOGGED_IN = "prefect-cloud.user.logged-in"
USER_LOGGED_OUT = "prefect-cloud.user.logged-out"
USER_LOGIN_FAILED = "prefect-cloud.user.login-failed"
TOKEN_CREATED = "prefect-cloud.api-token.created"
TOKEN_REVOKED = "prefect-cloud.api-token.revoked"
WEBHOOK_CREATED = "prefect-cloud.webhook.created"
WEBHOOK_UPDATED = "prefect-cloud.webhook.updated"
WEBHOOK_DELETED = "prefect-cloud.webhook.deleted"
WEBHOOK_ENABLED = "prefect-cloud.webhook.enabled"
WEBHOOK_DISABLED = "prefect-cloud.webhook.disabled"
WEBHOOK_ROTATED = "prefect-cloud.webhook.rotated"
AUTOMATION_CREATED = "prefect-cloud.automation.created"
AUTOMATION_UPDATED = "prefect-cloud.automation.updated"
AUTOMATION_DELETED = "prefect-cloud.automation.deleted"
AUTOMATION_ENABLED = "prefect-cloud.automation.enabled"
AUTOMATION_DISABLED = "prefect-cloud.automation.disabled"
AUTOMATION_RESENT = "prefect-cloud.automation.resent"  # failed action runs sent again
ADMIN_ADDED = "prefect-cloud.admin.added"
ADMIN_CHANGED = "prefect-cloud.admin.changed"
ADMIN_DELETED = "prefect-cloud.admin.deleted"

AUDIT_EVENTS: frozenset[str] = frozenset(
    {
        USER_LOGGED_IN,
        USER_LOGGED_OUT,
        USER_LOGIN_FAILED,
        TOKEN_CREATED,
        TOKEN_REVOKED,
        WEBHOOK_CREATED,
        WEBHOOK_UPDATED,
        WEBHOOK_DELETED,
        WEBHOOK_ENABLED,
        WEBHOOK_DISABLED,
        WEBHOOK_ROTATED,
        AUTOMATION_CREATED,
        AUTOMATION_UPDATED,
        AUTOMATION_DELETED,
        AUTOMATION_ENABLED,
        AUTOMATION_DISABLED,
        AUTOMATION_RESENT,
        ADMIN_ADDED,
        ADMIN_CHANGED,
        ADMIN_DELETED,
    }
)

ACTOR_ROLE = "actor"
TOKEN_ROLE = "api-token"
# Field names whose values never appear in an audit event, on any model.
SECRET_FIELD_NAMES = frozenset({"password", "digest", "secret", "token", "session_data"})
MAX_TEXT = 10_000


def is_audit_event(name: str) -> bool:
    return name in AUDIT_EVENTS


# --- snapshots and diffs -------------------------------------------------------------------------


def _fingerprint(value: Any) -> str:
    if value in (None, ""):
        return ""
    return f"[redacted {field_secrets.fingerprint(value)}]"


def _jsonable(value: Any) -> Any:
    value = json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))
    value = field_secrets.fingerprinted(value)
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + f"… ({len(value) - MAX_TEXT} more characters)"
    return value


def snapshot(obj: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The audited state of `obj`: JSON values by field name, secrets as fingerprints."""
    opts = obj._meta
    names = list(fields or getattr(obj, "AUDITED_FIELDS", ()) or [])
    secret = SECRET_FIELD_NAMES | set(getattr(obj, "SECRET_FIELDS", ()))
    if not names:
        names = [f.name for f in opts.concrete_fields] + [
            f.name for f in opts.many_to_many if obj.pk is not None
        ]
    out: dict[str, Any] = {}
    for name in names:
        model_field = opts.get_field(name)
        if model_field.many_to_many:
            value = sorted(str(pk) for pk in getattr(obj, name).values_list("pk", flat=True))
        else:
            value = getattr(obj, model_field.attname)
        out[name] = _fingerprint(value) if name in secret else _jsonable(value)
    return out


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, dict]:
    """`{field: {"before": …, "after": …}}` for every field whose value differs."""
    before, after = before or {}, after or {}
    changes = {}
    for name in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(name), after.get(name)
        if old != new:
            changes[name] = {"before": old, "after": new}
    return changes


# --- targets and actors --------------------------------------------------------------------------


def user_resource(user, role: str | None = None) -> dict[str, str]:
    labels = {
        RESOURCE_ID: f"prefect-cloud.user.{user.pk}",
        "prefect.resource.name": user.get_username(),
    }
    if role:
        labels[RESOURCE_ROLE] = role
    return labels


def token_resource(token, role: str | None = None) -> dict[str, str]:
    labels = {
        RESOURCE_ID: f"prefect-cloud.api-token.{token.pk}",
        "prefect.resource.name": token.name,
    }
    if role:
        labels[RESOURCE_ROLE] = role
    return labels


def target_resource(target: models.Model | Mapping[str, str]) -> dict[str, str]:
    """The primary resource of an audit event about `target`."""
    if isinstance(target, Mapping):
        return {str(k): str(v) for k, v in target.items()}
    if hasattr(target, "audit_resource"):
        return dict(target.audit_resource())
    if isinstance(target, get_user_model()):
        return user_resource(target)
    if isinstance(target, ApiToken):
        return token_resource(target)
    opts = target._meta
    return {
        RESOURCE_ID: f"eventsite.{opts.app_label}.{opts.model_name}.{target.pk}",
        "prefect.resource.name": str(target)[:200],
    }


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def actor_of(request: HttpRequest | None, user=None) -> tuple[dict[str, Any], list[dict]]:
    """The payload's `actor` and the related resources naming who acted."""
    if user is None and request is not None:
        candidate = getattr(request, "user", None)
        if candidate is not None and getattr(candidate, "is_authenticated", False):
            user = candidate
    token = getattr(request, "auth", None) if request is not None else None
    if not isinstance(token, ApiToken):
        token = None
    actor: dict[str, Any] = {
        "user": user.get_username() if user is not None else None,
        "user_id": user.pk if user is not None else None,
        "token": token.name if token else None,
        "ip": _client_ip(request) if request is not None else None,
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:512] if request else None,
        "via": "web" if request is not None else "system",
    }
    if token is not None:
        actor["via"] = "api"
    related = []
    if user is not None:
        related.append(user_resource(user, ACTOR_ROLE))
    if token is not None:
        related.append(token_resource(token, TOKEN_ROLE))
    return actor, related


# --- recording -----------------------------------------------------------------------------------


def record(
    event: str,
    *,
    target: models.Model | Mapping[str, str],
    request: HttpRequest | None = None,
    user=None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> schema.Event:
    """Store one audit event about `target`, done by `user` (default: the request's user).

    `request` defaults to the request being served. Give `before` and/or `after` (from
    `snapshot`) for changes; the payload then carries their `changes` diff. `details` adds
    other keys to the payload.
    """
    if event not in AUDIT_EVENTS:
        raise ValueError(f"{event!r} is not an audit event name; add it to AUDIT_EVENTS")
    if request is None:
        request = current_request()
    actor, related = actor_of(request, user)
    resource = target_resource(target)
    payload: dict[str, Any] = {
        "actor": actor,
        "target": {"id": resource[RESOURCE_ID], "name": schema.resource_name(resource)},
    }
    if before is not None or after is not None:
        payload["changes"] = diff(before, after)
    if details:
        payload.update(_jsonable(dict(details)))
    return emit(event, resource=resource, related=related, payload=payload, source="audit")


def record_login_failure(username: str, request: HttpRequest | None, *, reason: str | None = None):
    """Record a failed (or refused) sign-in for `username`; the account tried is the target."""
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    target = user or {
        RESOURCE_ID: "prefect-cloud.user.unknown",
        "prefect.resource.name": "unknown user",
    }
    # The attempt is anonymous: the account tried is the target, never the actor.
    return record(
        USER_LOGIN_FAILED,
        target=target,
        request=request,
        details={"username": username, "reason": reason or "invalid credentials"},
    )
