"""Signal handlers that turn sign-ins, API tokens and admin changes into audit events.

Connected in `EventsConfig.ready()`. Handlers for sign-ins also keep the login-throttle counts
(`events.accounts`), since both react to the same signals.
"""

from __future__ import annotations

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from events import accounts, audit
from events.models import ApiToken
from events.schema import RESOURCE_ID

ADMIN_EVENTS = {
    ADDITION: audit.ADMIN_ADDED,
    CHANGE: audit.ADMIN_CHANGED,
    DELETION: audit.ADMIN_DELETED,
}


@receiver(user_logged_in, dispatch_uid="audit-logged-in")
def _logged_in(sender, request, user, **kwargs) -> None:
    accounts.forget_failures(user.get_username())
    audit.record(audit.USER_LOGGED_IN, target=user, request=request, user=user)


@receiver(user_logged_out, dispatch_uid="audit-logged-out")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit.record(audit.USER_LOGGED_OUT, target=user, request=request, user=user)


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or "")[:150]
    accounts.count_failure(username, request)
    record_login_failure(username, request)


def record_login_failure(username: str, request, *, reason: str | None = None) -> None:
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    target = user or {
        RESOURCE_ID: "prefect-cloud.user.unknown",
        "prefect.resource.name": "unknown user",
    }
    # The attempt is anonymous: the account tried is the target, never the actor.
    audit.record(
        audit.USER_LOGIN_FAILED,
        target=target,
        request=request,
        details={"username": username, "reason": reason or "invalid credentials"},
    )


@receiver(post_save, sender=ApiToken, dispatch_uid="audit-api-token")
def _token_saved(sender, instance: ApiToken, created: bool, update_fields=None, **kwargs) -> None:
    details = {"name": instance.name, "prefix": instance.prefix, "owner": instance.user.username}
    if created:
        audit.record(audit.TOKEN_CREATED, target=instance, details=details)
    elif instance.revoked is not None and (update_fields is None or "revoked" in update_fields):
        audit.record(audit.TOKEN_REVOKED, target=instance, details=details)


# --- the Django admin ------------------------------------------------------------------------------


def _key(instance) -> tuple[str, str]:
    return instance._meta.label_lower, str(instance.pk)


@receiver(pre_save, dispatch_uid="audit-admin-before")
def _remember_before(sender, instance, raw=False, **kwargs) -> None:
    """In an admin request, keep each changed object's state from just before the save."""
    scope = audit.current_scope()
    if scope is None or raw or not scope.is_admin or isinstance(instance, LogEntry):
        return
    if instance.pk is None or instance._state.adding:
        return
    key = _key(instance)
    if key in scope.before:
        return
    current = type(instance)._default_manager.filter(pk=instance.pk).first()
    if current is not None:
        scope.before[key] = audit.snapshot(current)


def _record_log_entry(entry: LogEntry, scope: audit.RequestScope | None) -> None:
    model = entry.content_type.model_class() if entry.content_type_id else None
    obj = None
    if model is not None:
        obj = model._default_manager.filter(pk=entry.object_id).first()
    before = after = None
    if entry.action_flag == CHANGE:
        after = audit.snapshot(obj) if obj is not None else None
        if scope is not None and model is not None:
            before = scope.before.get((model._meta.label_lower, str(entry.object_id)))
    elif entry.action_flag == ADDITION:
        after = audit.snapshot(obj) if obj is not None else None
    elif entry.action_flag == DELETION and obj is not None:
        # Logged just before the delete, so the object is still there to describe.
        before = audit.snapshot(obj)
    if obj is not None:
        target = obj
    else:
        label = entry.content_type.app_label + "." + entry.content_type.model
        target = {
            RESOURCE_ID: f"eventsite.{label}.{entry.object_id}",
            "prefect.resource.name": entry.object_repr,
        }
    audit.record(
        ADMIN_EVENTS.get(entry.action_flag, audit.ADMIN_CHANGED),
        target=target,
        request=scope.request if scope else None,
        user=entry.user,
        before=before,
        after=after,
        details={
            "model": f"{entry.content_type.app_label}.{entry.content_type.model}",
            "object_id": entry.object_id,
            "object_repr": entry.object_repr,
            "change_message": entry.get_change_message(),
        },
    )
    if scope is not None:
        scope.recorded_log_entries.add(entry.pk)


@receiver(post_save, sender=LogEntry, dispatch_uid="audit-admin-log-entry")
def _log_entry_saved(sender, instance: LogEntry, created: bool, raw=False, **kwargs) -> None:
    if created and not raw:
        _record_log_entry(instance, audit.current_scope())


def record_bulk_log_entries(scope: audit.RequestScope) -> None:
    """Admin bulk actions write their log entries with `bulk_create`, which sends no signal."""
    user = getattr(scope.request, "user", None)
    if user is None or not user.is_authenticated:
        return
    entries = LogEntry.objects.filter(user=user, action_time__gte=scope.started).exclude(
        pk__in=scope.recorded_log_entries
    )
    for entry in entries.select_related("content_type", "user"):
        _record_log_entry(entry, scope)
