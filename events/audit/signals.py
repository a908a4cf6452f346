"""Signal handlers that turn sign-ins, API tokens and admin changes into audit events.

Connected in `EventsConfig.ready()`. Handlers for sign-ins also keep the login-throttle counts
(`events.accounts.throttle`), since both react to the same signals.
"""

from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from events.accounts import throttle
from events.accounts.models import ApiToken
from events.audit import admin_log, trail
from events.audit.scope import current_scope


@receiver(user_logged_in, dispatch_uid="audit-logged-in")
def _logged_in(sender, request, user, **kwargs) -> None:
    throttle.forget_failures(user.get_username())
    trail.record(trail.USER_LOGGED_IN, target=user, request=request, user=user)


@receiver(user_logged_out, dispatch_uid="audit-logged-out")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        trail.record(trail.USER_LOGGED_OUT, target=user, request=request, user=user)


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or "")[:150]
    throttle.count_failure(username, request)
    trail.record_login_failure(username, request)


@receiver(post_save, sender=ApiToken, dispatch_uid="audit-api-token")
def _token_saved(sender, instance: ApiToken, created: bool, update_fields=None, **kwargs) -> None:
    details = {"name": instance.name, "prefix": instance.prefix, "owner": instance.user.username}
    if created:
        trail.record(trail.TOKEN_CREATED, target=instance, details=details)
    elif instance.revoked is not None and (update_fields is None or "revoked" in update_fields):
        trail.record(trail.TOKEN_REVOKED, target=instance, details=details)


# --- the Django admin ------------------------------------------------------------------------------


@receiver(pre_save, dispatch_uid="audit-admin-before")
def _remember_before(sender, instance, raw=False, **kwargs) -> None:
    """In an admin request, keep each changed object's state from just before the save."""
    scope = current_scope()
    if scope is None or raw or not scope.is_admin or isinstance(instance, LogEntry):
        return
    if instance.pk is None or instance._state.adding:
        return
    key = (instance._meta.label_lower, str(instance.pk))
    if key in scope.before:
        return
    current = type(instance)._default_manager.filter(pk=instance.pk).first()
    if current is not None:
        scope.before[key] = trail.snapshot(current)


@receiver(post_save, sender=LogEntry, dispatch_uid="audit-admin-log-entry")
def _log_entry_saved(sender, instance: LogEntry, created: bool, raw=False, **kwargs) -> None:
    if created and not raw:
        admin_log.record_log_entry(instance, current_scope())
