import json

from django.contrib import admin
from django.utils.html import format_html

from events.models import ApiToken, Event, EventResource, Webhook, WebhookRequest


def _pretty(value) -> str:
    return format_html(
        "<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=2, sort_keys=True)
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Stored events are the log: they are looked at here, never changed."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EventResourceInline(admin.TabularInline):
    model = EventResource
    fields = ["role", "resource_id"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["occurred", "event", "resource_id", "received"]
    list_filter = [("occurred", admin.DateFieldListFilter)]
    search_fields = ["=id", "event", "resource_id"]
    date_hierarchy = "occurred"
    ordering = ["-occurred", "-id"]
    show_full_result_count = False
    fields = [
        "id",
        "occurred",
        "received",
        "event",
        "resource_id",
        "follows",
        "resource_json",
        "related_json",
        "payload_json",
    ]
    readonly_fields = fields
    inlines = [EventResourceInline]

    @admin.display(description="resource")
    def resource_json(self, obj):
        return _pretty(obj.resource)

    @admin.display(description="related")
    def related_json(self, obj):
        return _pretty(obj.related)

    @admin.display(description="payload")
    def payload_json(self, obj):
        return _pretty(obj.payload)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created", "last_used", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "name", "prefix", "created", "last_used", "revoked"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # A secret can only be shown when it is made: use the account page or `create_api_token`.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            token.revoke()


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "owner", "updated"]
    list_filter = ["enabled", "kind"]
    search_fields = ["name", "description"]
    # The slug is the webhook's credential: rotate it from the webhook page, never type it.
    exclude = ["slug"]


@admin.register(WebhookRequest)
class WebhookRequestAdmin(ReadOnlyAdmin):
    """The request log is a record of what senders posted: looked at here, never changed."""

    list_display = ["received", "webhook", "method", "status", "outcome"]
    list_filter = ["outcome", "status"]
    search_fields = ["=id", "slug", "error"]
    date_hierarchy = "received"
    exclude = ["body"]
    readonly_fields = ["body_preview"]

    @admin.display(description="body")
    def body_preview(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.body_text(65536))
