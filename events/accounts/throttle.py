"""Login throttling.

Throttling counts failed logins per account and per client address in the database (`LoginFailure`
rows, so every web process agrees). Within `EVENTSITE_LOGIN_THROTTLE_WINDOW`:

- past `EVENTSITE_LOGIN_FAILURES_PER_ACCOUNT` failures for an account *from one address*, that
  account is locked for that address (the pair), not for its owner elsewhere;
- past `EVENTSITE_LOGIN_FAILURES_PER_IP` failures from one address, that address is locked;
- past `EVENTSITE_LOGIN_FAILURES_PER_IP` failures for an account from anywhere, the account is
  slowed to one attempt every `EVENTSITE_LOGIN_SLOW_INTERVAL`, never locked.

A refused login is refused until the window has passed (or the pause):

- the login page's form (`ThrottledAuthenticationForm`) says so plainly, before checking the
  password;
- the authentication backend refuses as well, so the admin's login and any other caller of
  `authenticate()` are throttled too.

A successful login clears the account's count; the address count only ages out.
"""

from __future__ import annotations

import math
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from events import audit
from events.accounts.models import LoginFailure


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _window_start() -> datetime:
    return timezone.now() - settings.EVENTSITE_LOGIN_THROTTLE_WINDOW


def count_failure(username: str, request: HttpRequest | None) -> None:
    LoginFailure.objects.create(username=username[:150], ip=client_ip(request))
    # Rows older than the window no longer count; dropping them here keeps the table small.
    LoginFailure.objects.filter(created__lt=_window_start()).delete()


def forget_failures(username: str) -> None:
    LoginFailure.objects.filter(username=username).delete()


def throttled(username: str | None, request: HttpRequest | None) -> str | None:
    """Why logins for `username` from this request are refused right now, or None."""
    since = _window_start()
    ip = client_ip(request)
    condition = Q(username=username) if username else Q(pk__in=[])
    if ip:
        condition |= Q(ip=ip)
    recent = list(
        LoginFailure.objects.filter(condition, created__gte=since).values_list(
            "username", "ip", "created"
        )
    )
    by_account = [created for name, _, created in recent if username and name == username]
    by_pair = [c for name, addr, c in recent if username and name == username and addr == ip]
    by_ip = [created for _, addr, created in recent if ip and addr == ip]
    window = settings.EVENTSITE_LOGIN_THROTTLE_WINDOW

    def wait(times: list[datetime]) -> str:
        seconds = (min(times) + window - timezone.now()).total_seconds()
        minutes = max(1, math.ceil(seconds / 60))
        return f"{minutes} minute{'s' if minutes != 1 else ''}"

    # The account is locked for this address only: guessing from elsewhere cannot lock its
    # owner (an admin, say) out of their own login.
    if len(by_pair) >= settings.EVENTSITE_LOGIN_FAILURES_PER_ACCOUNT:
        return (
            f"Too many failed logins for this account. Try again in {wait(by_pair)}, "
            "or ask an administrator to reset your password."
        )
    if len(by_ip) >= settings.EVENTSITE_LOGIN_FAILURES_PER_IP:
        return f"Too many failed logins from your network address. Try again in {wait(by_ip)}."
    # Guessed from many addresses: slowed (one attempt every few seconds), never locked.
    if len(by_account) >= settings.EVENTSITE_LOGIN_FAILURES_PER_IP:
        pause = settings.EVENTSITE_LOGIN_SLOW_INTERVAL
        if timezone.now() - max(by_account) < pause:
            return (
                "Many failed logins for this account from several addresses: one attempt "
                f"every {pause.total_seconds():g} seconds. Try again in a moment."
            )
    return None


class ThrottledModelBackend(ModelBackend):
    """Django's backend, refusing every attempt while the account or address is throttled."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if throttled(username, request):
            # PermissionDenied stops `authenticate()` from trying other backends.
            raise PermissionDenied("login throttled")
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def _username_field() -> str:
        return get_user_model().USERNAME_FIELD


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form, with a clear message when logins are throttled."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if username and (reason := throttled(username, self.request)):
            # Refused before the password is checked, so it is not counted again; still audited.
            audit.record_login_failure(username, self.request, reason="throttled")
            raise forms.ValidationError(reason, code="throttled")
        return super().clean()
