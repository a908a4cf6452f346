"""Pages that resend failed action runs: one from the firing page, or all since a time."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from automations.actions import resend as resending
from automations.models import ActionRun, Automation
from events.accounts.roles import Capability, capability_required


class SinceForm(forms.Form):
    since = forms.DateTimeField(
        label="Failed since (UTC)",
        help_text="YYYY-MM-DD HH:MM. Runs that gave up at or after this time are sent again.",
    )


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def resend_run(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Send one failed action run again (the firing page's "Resend")."""
    run = get_object_or_404(ActionRun.objects.select_related("automation"), pk=run_id)
    if resending.resend(run):
        messages.success(
            request,
            f"Resent 1 failed run (action #{run.action_index}); it goes out within a second.",
        )
    else:
        run.refresh_from_db()
        messages.error(request, f"Nothing resent: the run is {run.status}, not failed.")
    return redirect("automations:firing", run.firing_id)


@login_required
@capability_required(Capability.MANAGE)
def resend(request: HttpRequest, automation_id: uuid.UUID) -> HttpResponse:
    """Resend every run of an automation that failed since a time (GET: how many; POST: do it)."""
    automation = get_object_or_404(Automation, pk=automation_id)
    data = request.POST if request.method == "POST" else request.GET
    default = (timezone.now() - timedelta(hours=24)).replace(second=0, microsecond=0)
    form = SinceForm(data if "since" in data else None, initial={"since": default})
    since = form.cleaned_data["since"] if form.is_valid() else default
    if request.method == "POST":
        if not form.is_valid():
            return _page(request, automation, form, since, status=422)
        count = resending.resend_failed(automation, since=since)
        when = since.strftime("%Y-%m-%d %H:%M UTC")
        if count:
            messages.success(
                request,
                f"Resent {count} failed run{'s' if count != 1 else ''} since {when}; "
                "they go out within a second.",
            )
        else:
            messages.info(request, f"Nothing to resend: no run failed since {when}.")
        return redirect("automations:detail", automation.id)
    return _page(request, automation, form, since)


def _page(request, automation, form, since, *, status: int = 200) -> HttpResponse:
    failed = resending.failed_since(automation, since)
    return render(
        request,
        "automations/resend.html",
        {
            "automation": automation,
            "form": form,
            "since": since,
            "count": failed.count(),
            "recent": failed.order_by("-finished")[:20],
        },
        status=status,
    )
