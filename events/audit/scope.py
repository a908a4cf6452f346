"""The request being served, for the audit hooks: Django's signals carry no request."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone


@dataclass
class RequestScope:
    """What the audit hooks know about the request being served."""

    request: HttpRequest
    started: datetime = field(default_factory=timezone.now)
    # Admin requests: model snapshots taken just before a save, by (model label, pk).
    before: dict[tuple[str, str], dict] = field(default_factory=dict)
    recorded_log_entries: set[int] = field(default_factory=set)

    @property
    def is_admin(self) -> bool:
        return self.request.path.startswith("/admin/")


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "eventsite_audit_scope", default=None
)


def current_scope() -> RequestScope | None:
    return _scope.get()


def current_request() -> HttpRequest | None:
    scope = _scope.get()
    return scope.request if scope else None


def enter(request: HttpRequest) -> tuple[RequestScope, contextvars.Token]:
    scope = RequestScope(request)
    return scope, _scope.set(scope)


def leave(token: contextvars.Token) -> None:
    _scope.reset(token)
