import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from events import totals
from events.filter_sql import startswith_q
from events.models import ApiToken, Event, EventResource, Webhook, WebhookRequest


def _pretty(value) -> str:
    # format_html escapes the JSON text: payloads are untrusted.
    return format_html(
        "<pre style='white-space:pre-wrap;overflow-wrap:anywhere;max-height:40em;overflow:auto;"
        "font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px'>{}</pre>",
        json.dumps(value, indent=2, ensure_ascii=False),
    )


class EventFamilyFilter(admin.SimpleListFilter):
    """Broad families by name prefix: index range scans, never a DISTINCT over the whole log."""

    title = "family"
    parameter_name = "family"
    FAMILIES = {
        "runs": ("Flow and task runs", ["prefect.flow-run.", "prefect.task-run."]),
        "deployments": ("Deployments and work pools", ["prefect.deployment.", "prefect.work-"]),
        "automations": ("Automations", ["prefect.automation."]),
        "logs": ("Logs", ["prefect.log."]),
        "cloud": ("Audit, webhooks (prefect-cloud.*)", ["prefect-cloud."]),
        "eventsite": ("eventsite", ["eventsite."]),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.FAMILIES.items()] + [
            ("other", "Everything else")
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value in self.FAMILIES:
            q = Q()
            for prefix in self.FAMILIES[value][1]:
                q |= startswith_q("event", prefix)
            return queryset.filter(q)
        if value == "other":
            for _, prefixes in self.FAMILIES.values():
                for prefix in prefixes:
                    queryset = queryset.exclude(startswith_q("event", prefix))
            return queryset
        return queryset


class EstimatedPaginator(Paginator):
    """The admin's page count without a full COUNT: exact when it takes under COUNT_BUDGET,
    else an estimate (`totals.count_or_estimate`)."""

    COUNT_BUDGET = 0.02

    @property
    def count(self) -> int:
        if not hasattr(self, "_count"):
            self._count, _ = totals.count_or_estimate(self.object_list, budget=self.COUNT_BUDGET)
        return self._count


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
    list_display = ["occurred", "event", "resource_name", "resource_id", "received"]
    list_filter = [EventFamilyFilter, ("occurred", admin.DateFieldListFilter)]
    # Exact id, or name / resource-id prefixes: what people paste, and cheap on a large log.
    search_fields = ["=id", "^event", "^resource_id"]
    search_help_text = "An event id, or the start of an event name or resource id."
    # No date_hierarchy: its year links are a DISTINCT over every stored event. The count is
    # bounded too (no full COUNT on a large log): the list filter's date ranges stay.
    ordering = ["-occurred", "-id"]
    show_full_result_count = False
    paginator = EstimatedPaginator
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

    def view_on_site(self, obj):
        return reverse("events:detail", args=[obj.id])

    @admin.display(description="resource name")
    def resource_name(self, obj):
        return obj.resource_name

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
    # The slugs and the verification key are credentials: rotate and set them on the webhook
    # page (where the key is write-only), never here.
    fields = ["name", "description", "kind", "template", "enabled", "owner"]


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
