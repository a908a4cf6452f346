"""Roles: Prefect Cloud's workspace roles, cut to what eventsite has.

| role | may |
| --- | --- |
| viewer | read: the feed, event and resource pages, the read-only API and `/api/events/out` |
| editor | a viewer's rights, plus write events and create / change / delete / test automations and webhooks |
| admin | everything: the audit log, webhook slugs (their credential), others' tokens, the admin site |

A person's role: `admin` for superusers, staff and members of the "admin" group; `viewer` for
members of the "viewer" group; `editor` otherwise (so a plain account keeps what signed-in people
could always do). A token carries its user's role, or a narrower scope chosen when it is created
(`ApiToken.scope`): `viewer`, `editor`, or `events-write` ("write events only", what an SDK or a
Prefect worker needs: `POST /api/events` and `/api/events/in`, nothing else).

Everything a request may do is one of the `Capability`s below; `allows(actor, capability)` is
the one check, used by the API (`HasCapability`), the pages (`capability_required`, and the
`can` context for hiding what one may not do) and the sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from events.audit import AUDIT_EVENTS
from events.filters import EventFilter, EventNameFilter, name_matches


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


class Scope(StrEnum):
    """What a token may do: its user's role (`USER`), or narrower."""

    USER = ""
    VIEWER = "viewer"
    EDITOR = "editor"
    EVENTS_WRITE = "events-write"


class Capability(StrEnum):
    READ = "read"  # read events, automations, webhooks (without slugs)
    WRITE_EVENTS = "write-events"  # POST /api/events, /api/events/in
    MANAGE = "manage"  # create / change / delete / test automations and webhooks
    ADMIN = "admin"  # audit log, webhook slugs and secrets, others' tokens, users


GRANTS: dict[str, frozenset[Capability]] = {
    Role.VIEWER: frozenset({Capability.READ}),
    Role.EDITOR: frozenset({Capability.READ, Capability.WRITE_EVENTS, Capability.MANAGE}),
    Role.ADMIN: frozenset(Capability),
    Scope.EVENTS_WRITE: frozenset({Capability.WRITE_EVENTS}),
}
ROLE_GROUPS = {Role.ADMIN: "admin", Role.VIEWER: "viewer"}


def user_role(user: Any) -> Role | None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser or user.is_staff:
        return Role.ADMIN
    groups = {g.name for g in user.groups.all()}
    if ROLE_GROUPS[Role.ADMIN] in groups:
        return Role.ADMIN
    if ROLE_GROUPS[Role.VIEWER] in groups:
        return Role.VIEWER
    return Role.EDITOR


def grants(user: Any, token: Any = None) -> frozenset[Capability]:
    """What `user` may do, through `token` when the request came with one."""
    role = user_role(user)
    if role is None:
        return frozenset()
    allowed = GRANTS[role]
    scope = getattr(token, "scope", Scope.USER) if token is not None else Scope.USER
    if scope:
        allowed = allowed & GRANTS[scope]
    return allowed


def allows(user: Any, capability: Capability, token: Any = None) -> bool:
    return capability in grants(user, token)


def readable(event_filter: EventFilter, user: Any, token: Any = None) -> EventFilter:
    """`event_filter` as `user` may read it: without the audit trail unless they are an admin
    (it names people and their addresses)."""
    if allows(user, Capability.ADMIN, token):
        return event_filter
    names = event_filter.event or EventNameFilter()
    # Only the audit names the filter would match: a filter of other names (`acme.*`, or
    # `acme.payment.failed`) needs no exclusion, which costs every read of its names.
    audit = [name for name in AUDIT_EVENTS if name_matches(names, name)]
    if not audit:
        return event_filter
    excluded = sorted({*(names.exclude_name or []), *audit})
    return event_filter.model_copy(
        update={"event": names.model_copy(update={"exclude_name": excluded})}
    )


def scopes_for(user: Any) -> list[tuple[str, str]]:
    """The token scopes `user` may choose (never wider than their role)."""
    allowed = grants(user)
    choices = [(Scope.USER, "Same as my role")]
    for scope, label in (
        (Scope.EVENTS_WRITE, "Write events only (SDKs, Prefect clients)"),
        (Scope.VIEWER, "Read only"),
        (Scope.EDITOR, "Editor"),
    ):
        if GRANTS[scope] <= allowed:
            choices.append((scope, label))
    return choices


# --- the API -----------------------------------------------------------------------------------


class HasCapability(BasePermission):
    """DRF permission: the view's `capabilities` per method (default: reads need READ, other
    methods MANAGE)."""

    message = "Your role (or this token's scope) does not allow this."

    def has_permission(self, request, view) -> bool:
        needed = getattr(view, "capabilities", {}).get(request.method)
        if needed is None:
            needed = Capability.READ if request.method in SAFE_METHODS else Capability.MANAGE
        return allows(request.user, needed, request.auth)


# --- the pages ---------------------------------------------------------------------------------


def capability_required(capability: Capability) -> Callable:
    """A page decorator: the login page when signed out, 403 unless the role allows it."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not allows(request.user, capability):
                raise PermissionDenied("Your role does not allow this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def can(request) -> dict[str, Any]:
    """Context processor: `can.manage`, `can.admin`, … to hide what one may not do."""
    user = getattr(request, "user", None)
    allowed = grants(user) if user is not None else frozenset()
    return {
        "can": {c.name.lower(): c in allowed for c in Capability},
        "role": user_role(user) if user is not None else None,
    }
