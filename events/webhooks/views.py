"""Pages to manage webhooks: list, create, edit with a live test panel, and the request log."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from events.accounts.roles import Capability, allows, capability_required
from events.webhooks import changes, receive
from events.webhooks.changes import GRACE_PERIODS, STARTERS
from events.webhooks.forms import SAMPLES, SampleRequestForm, WebhookForm, sample_initial
from events.webhooks.models import Webhook, WebhookRequest
from eventsite.links import public_url

LOG_PAGE = 50


def _receive_url(request: HttpRequest, webhook: Webhook) -> str:
    return public_url(reverse("webhook-receive", args=[webhook.slug]), request=request)


def _curl(url: str, webhook: Webhook) -> str:
    sample = SAMPLES.get(webhook.kind) or SAMPLES[Webhook.Kind.DYNAMIC]
    auth = " -H 'Authorization: Bearer <token>'" if webhook.verification == "bearer" else ""
    if not sample["body"]:
        return f"curl -i -X POST '{url}'{auth}"
    headers = " ".join(f"-H '{line}'" for line in sample["headers"].splitlines()) + auth
    body = json.dumps(json.loads(sample["body"])).replace("'", "'\\''")
    return f"curl -i -X POST '{url}' {headers} -d '{body}'"


def _form_context() -> dict:
    # Rendered with `json_script` for the small script that fills in a kind's starter template.
    return {
        "starters": {str(k): v for k, v in STARTERS.items()},
        "samples": {str(k): v for k, v in SAMPLES.items()},
    }


def _listed():
    """Webhooks with what the list shows about each: the last request, failures in 24 h."""
    since = timezone.now() - timedelta(hours=24)
    return Webhook.objects.annotate(
        last_request=Max("requests__received"),
        recent_failures=Count(
            "requests",
            filter=Q(requests__received__gte=since)
            & ~Q(requests__outcome=WebhookRequest.Outcome.ACCEPTED),
        ),
    )


@login_required
def webhook_list(request: HttpRequest) -> HttpResponse:
    hooks = _listed()
    unknown = WebhookRequest.objects.filter(webhook__isnull=True)[:20]
    return render(request, "webhooks/list.html", {"webhooks": hooks, "unknown": unknown})


@login_required
@capability_required(Capability.MANAGE)
def webhook_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = WebhookForm(request.POST)
        if form.is_valid():
            webhook = changes.create(user=request.user, request=request, **form.saved_fields())
            messages.success(request, f"Webhook “{webhook.name}” created. Send it a request.")
            return redirect("webhooks:detail", pk=webhook.pk)
    else:
        kind = Webhook.Kind.DYNAMIC
        form = WebhookForm(initial={"kind": kind, "template": STARTERS[kind], "strict": True})
    return render(
        request,
        "webhooks/new.html",
        {"form": form, "sample_form": SampleRequestForm(), **_form_context()},
    )


def _log_page(request: HttpRequest, webhook: Webhook):
    rows = WebhookRequest.objects.filter(webhook=webhook).select_related("replay_of")
    failures_only = request.GET.get("failures") == "1"
    if failures_only:
        rows = rows.exclude(outcome=WebhookRequest.Outcome.ACCEPTED)
    before = request.GET.get("before")
    if before:
        try:
            anchor = WebhookRequest.objects.filter(webhook=webhook, pk=uuid.UUID(before)).first()
        except ValueError:
            anchor = None
        if anchor is not None:
            rows = rows.filter(
                Q(received__lt=anchor.received) | Q(received=anchor.received, id__lt=anchor.id)
            )
    page = list(rows.order_by("-received", "-id")[: LOG_PAGE + 1])
    more = page[LOG_PAGE - 1].pk if len(page) > LOG_PAGE else None
    return page[:LOG_PAGE], more, failures_only


def _sample_request(request: HttpRequest, webhook: Webhook) -> WebhookRequest | None:
    """The logged request the test panel starts with: the one asked for (`?sample=<id>`), else
    the latest accepted one (what real senders send), else none (the kind's sample)."""
    requests = WebhookRequest.objects.filter(webhook=webhook).exclude(body_truncated=True)
    if raw := request.GET.get("sample"):
        try:
            return requests.filter(pk=uuid.UUID(raw)).first()
        except ValueError:
            return None
    return requests.filter(outcome=WebhookRequest.Outcome.ACCEPTED).order_by("-received").first()


@login_required
def webhook_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    admin = allows(request.user, Capability.ADMIN)
    if request.method == "POST":
        if not allows(request.user, Capability.MANAGE):
            raise PermissionDenied("Your role does not allow changing webhooks.")
        form = WebhookForm(request.POST, instance=Webhook.objects.get(pk=pk))
        if form.is_valid():
            changes.update(webhook, request=request, **form.saved_fields())
            messages.success(request, "Webhook saved.")
            return redirect("webhooks:detail", pk=webhook.pk)
    else:
        form = WebhookForm(instance=webhook)
    log, more, failures_only = _log_page(request, webhook)
    # The URL holds the slug, the webhook's credential: admins only.
    url = _receive_url(request, webhook) if admin else None
    sample = SAMPLES.get(webhook.kind, SAMPLES[Webhook.Kind.DYNAMIC])
    initial = {"sample_headers": sample["headers"], "sample_body": sample["body"]}
    loaded = _sample_request(request, webhook)
    if loaded is not None:
        initial = sample_initial(loaded)
    sample_form = SampleRequestForm(initial=initial)
    context = {
        "webhook": webhook,
        "form": form,
        "sample_form": sample_form,
        "receive_url": url,
        "curl": _curl(url, webhook) if url else None,
        "log": log,
        "more": more,
        "failures_only": failures_only,
        "loaded": loaded,
        "grace_periods": GRACE_PERIODS,
        **_form_context(),
    }
    if request.htmx and request.GET.get("before"):
        return render(request, "webhooks/detail.html#log-rows", context)
    return render(request, "webhooks/detail.html", context)


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def webhook_toggle(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    changes.set_enabled(webhook, not webhook.enabled, request=request)
    state = "enabled" if webhook.enabled else "disabled: its URL now answers 410"
    if getattr(request, "htmx", False):
        # The list's toggle swaps its own row; a toast says what happened.
        response = render(
            request, "webhooks/list.html#row", {"webhook": _listed().get(pk=webhook.pk)}
        )
        return trigger_client_event(response, "eventsite:toast", {"text": f"Webhook {state}."})
    messages.success(request, f"Webhook {state}.")
    # Back where the toggle was pressed (the list or the detail page), never off the site.
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("webhooks:detail", pk=webhook.pk)


@login_required
@require_POST
@capability_required(Capability.ADMIN)
def webhook_rotate(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    grace = GRACE_PERIODS.get(request.POST.get("grace", "0"), GRACE_PERIODS["0"])
    changes.rotate(webhook, request=request, grace=grace)
    if grace:
        until = timezone.localtime(webhook.previous_slug_expires).strftime("%Y-%m-%d %H:%M")
        messages.success(
            request,
            f"New URL issued. The old one keeps working until {until} UTC; its requests are "
            "logged below, marked “old URL”. Update your senders before then.",
        )
    else:
        messages.success(
            request, "New URL issued. The old one no longer works: update your senders."
        )
    return redirect("webhooks:detail", pk=webhook.pk)


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def webhook_delete(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    name = webhook.name
    changes.delete(webhook, request=request)
    messages.success(request, f"Webhook “{name}” deleted.")
    return redirect("webhooks:list")


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def webhook_replay(request: HttpRequest, pk: uuid.UUID, request_id: uuid.UUID) -> HttpResponse:
    original = get_object_or_404(WebhookRequest, pk=request_id, webhook_id=pk)
    accepted_before = (
        original.accepted
        or original.replays.filter(outcome=WebhookRequest.Outcome.ACCEPTED).exists()
    )
    if original.replayable and accepted_before and request.POST.get("confirm") != "1":
        # Already stored once: replaying stores another event, so ask first (no JS needed).
        return render(
            request,
            "webhooks/replay_confirm.html",
            {"webhook": original.webhook, "original": original},
        )
    if not original.replayable:
        reason = (
            "it failed the webhook's verification"
            if original.outcome == WebhookRequest.Outcome.UNAUTHORIZED
            else "its body was cut at the limit"
        )
        messages.error(request, f"This request cannot be replayed: {reason}.")
    else:
        row = receive.replay(original)
        if row.accepted:
            messages.success(request, "Replayed: the event was stored.")
        else:
            messages.error(request, f"Replayed, and it failed again ({row.status}): {row.error}")
    return redirect(reverse("webhooks:detail", args=[pk]) + "#log")


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def webhook_test(request: HttpRequest) -> HttpResponse:
    """The test panel: render a template against a sample request, store nothing."""
    form = SampleRequestForm(request.POST)
    context: dict = {"form": form}
    if form.is_valid():
        existing = None
        webhook_id = request.POST.get("webhook")
        if webhook_id:
            try:
                existing = Webhook.objects.filter(pk=uuid.UUID(webhook_id)).first()
            except ValueError:
                existing = None
        probe = Webhook(
            id=existing.id if existing else uuid.uuid4(),
            name=request.POST.get("name") or (existing.name if existing else "new webhook"),
            template=form.cleaned_data["template"],
            strict=form.cleaned_data["strict"],
        )
        result = receive.evaluate(probe, form.incoming(path="/hooks/sample"))
        context["result"] = result
        if result.event is not None:
            context["event_json"] = json.dumps(result.event.to_wire(), indent=2)
    return render(request, "webhooks/_test_result.html", context)
