"""Automation pages: list, detail, the form (new, edit, from an event), explain and preview."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from automations import actions as action_kinds
from automations import changes, explain
from automations.action_forms import is_resolved
from automations.forms import ActionForm, ActionFormSet, AutomationForm
from automations.key_states import key_states
from automations.models import ActionRun, Automation, Firing, TriggerOutage
from automations.triggers import TriggerInvalid, automate, describe, parse_trigger
from automations.triggers.describe import sentence
from events import queries
from events.accounts.roles import Capability, capability_required

DELIVERIES_SHOWN = 50
PREVIEW_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
PREVIEW_PAGE = 50  # firings a preview page lists
FINISHED = [ActionRun.Status.SUCCEEDED, ActionRun.Status.FAILED]


def _summary(trigger: dict) -> str:
    try:
        return describe(parse_trigger(trigger))
    except TriggerInvalid:
        return "(invalid trigger)"


@login_required
def automation_list(request: HttpRequest) -> HttpResponse:
    automations = _with_health(Automation.objects.all()).order_by("name", "created")
    rows = [{"automation": a, "summary": _summary(a.trigger)} for a in automations]
    return render(request, "automations/list.html", {"rows": rows})


def _with_health(automations):
    """`last_fired` (test sends and resolutions do not count), `failing`: its latest real action
    run failed, and `open_outages`: the keys firing now (not resolved yet)."""
    latest = ActionRun.objects.filter(
        automation=OuterRef("pk"), firing__is_test=False, status__in=FINISHED
    ).order_by("-created")
    outages = (
        TriggerOutage.objects.filter(automation=OuterRef("pk"))
        .values("automation")
        .annotate(n=Count("id"))
        .values("n")
    )
    return automations.annotate(
        last_fired=Max(
            "firings__triggered",
            filter=Q(firings__is_test=False, firings__state=Firing.State.TRIGGERED),
        ),
        last_run_status=Subquery(latest.values("status")[:1]),
        open_outages=Subquery(outages[:1]),
    )


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def automation_toggle(request: HttpRequest, automation_id: uuid.UUID) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=automation_id)
    changes.set_enabled(automation, not automation.enabled)
    if request.htmx:
        automation = _with_health(Automation.objects.filter(pk=automation.pk)).get()
        row = {"automation": automation, "summary": _summary(automation.trigger)}
        return render(request, "automations/list.html#row", {"row": row})
    return redirect("automations:list")


@login_required
def automation_detail(request: HttpRequest, automation_id: uuid.UUID) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=automation_id)
    firings = list(automation.firings.prefetch_related("action_runs")[:50])
    tested = None
    if raw := request.GET.get("tested"):
        try:
            tested = automation.action_runs.filter(pk=uuid.UUID(raw)).first()
        except ValueError:
            tested = None
    actions = [
        {"index": index, "source": source, "action": action, "summary": _action_summary(action)}
        for source, index, action in automation.all_actions()
    ]
    on_resolve = [
        {"index": index, "action": action, "summary": _action_summary(action)}
        for _, index, action in automation.resolve_actions()
    ]
    return render(
        request,
        "automations/detail.html",
        {
            "automation": automation,
            "summary": _summary(automation.trigger),
            "firings": firings,
            "actions": actions,
            "on_resolve": on_resolve,
            "keys": key_states(automation),
            "failed_runs": automation.action_runs.filter(status=ActionRun.Status.FAILED).count(),
            "deliveries": list(automation.deliveries.select_related("run")[:DELIVERIES_SHOWN]),
            "tested": tested,
        },
    )


def _action_summary(action: dict) -> str:
    try:
        return action_kinds.parse_action(action).describe()
    except action_kinds.ActionsInvalid:
        return action.get("type", "?")


def _form_page(
    request,
    *,
    automation: Automation | None,
    initial: dict,
    action_initial: list,
    scopes: dict | None = None,
):
    if request.method == "POST":
        form = AutomationForm(request.POST, automation=automation)
        # The stored actions again: each form knows which secrets its action has stored.
        formset = ActionFormSet(request.POST, prefix="actions", initial=action_initial)
        definition = form.validate_with(formset)
        if definition is not None:
            if automation is None:
                automation = changes.create(
                    id=form.new_id, owner=request.user, **definition.fields()
                )
            else:
                changes.update(automation, definition.fields())
            messages.success(request, f"Saved “{automation.name}”.")
            return redirect("automations:detail", automation_id=automation.id)
        status = 422
    else:
        form = AutomationForm(initial=initial, automation=automation)
        formset = ActionFormSet(initial=action_initial, prefix="actions")
        status = 200
    return render(
        request,
        "automations/form.html",
        {
            "form": form,
            "formset": formset,
            "automation": automation,
            "scopes": scopes,
            "starters": automate.starters() if automation is None and not scopes else {},
            "sentence": _sentence(form),
        },
        status=status,
    )


def _sentence(form: AutomationForm) -> str:
    """The trigger the form holds, in plain words (or why it cannot be read yet)."""
    try:
        if form.is_bound:
            form.is_valid()
            trigger = form.trigger_data()
        else:
            trigger = json.loads(form.initial.get("trigger_json") or "{}")
        return sentence(parse_trigger(trigger))
    except TriggerInvalid as exc:
        return "Not a complete trigger yet: " + "; ".join(e["message"] for e in exc.errors[:2])
    except forms.ValidationError as exc:
        return "Not a complete trigger yet: " + "; ".join(exc.messages[:2])


@login_required
@require_POST
def automation_sentence(request: HttpRequest) -> HttpResponse:
    """The live sentence under the trigger, while the form is edited."""
    form = AutomationForm(request.POST)
    return render(request, "automations/form.html#sentence", {"sentence": _sentence(form)})


@login_required
def automation_action_slot(request: HttpRequest) -> HttpResponse:
    """One more empty action slot for the form (the formset's next index), without a save."""
    try:
        index = min(max(int(request.GET.get("actions-TOTAL_FORMS", "1")), 0), 50)
    except ValueError:
        index = 1
    slot = ActionForm(prefix=f"actions-{index}", empty_permitted=True, use_required_attribute=False)
    context = {"action_form": slot, "index": index, "total": index + 1}
    return render(request, "automations/_action_slot.html", context)


@login_required
@capability_required(Capability.MANAGE)
def automation_new(request: HttpRequest) -> HttpResponse:
    trigger = {"type": "event", "posture": "Reactive", "expect": [], "match": {}}
    name = ""
    scopes = None
    if event_id := request.GET.get("event"):
        try:
            row = queries.event(uuid.UUID(event_id))
        except ValueError:
            row = None
        if row is None:
            raise Http404("No such event.")
        offered = automate.scopes(row.as_schema())
        chosen = next((o for o in offered if o.key == request.GET.get("scope")), offered[0])
        trigger = chosen.trigger
        target = row.resource_name if chosen.key == "this" else chosen.label.partition(" of ")[2]
        name = f"When {row.event} happens to {target or row.resource_name}"[:500]
        scopes = {"event": row.id, "offered": offered, "chosen": chosen.key}
    elif (starter := automate.starters().get(request.GET.get("template", ""))) is not None:
        name = f"When {starter[0]}"[:500]
        trigger = starter[1]
    elif resource_id := request.GET.get("resource", "").strip()[:1024]:
        # "Automate this resource" (/resources/<id>/): as the primary resource, or in a role.
        if role := request.GET.get("role", "").strip()[:100]:
            trigger["match_related"] = {
                "prefect.resource.id": resource_id,
                "prefect.resource.role": role,
            }
        else:
            trigger["match"] = {"prefect.resource.id": resource_id}
        name = f"When something happens to {resource_id}"[:500]
    initial = AutomationForm.initial_for(trigger, name=name, enabled=True)
    return _form_page(request, automation=None, initial=initial, action_initial=[], scopes=scopes)


@login_required
@capability_required(Capability.MANAGE)
def automation_edit(request: HttpRequest, automation_id: uuid.UUID) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=automation_id)
    initial = AutomationForm.initial_for(
        automation.trigger,
        name=automation.name,
        description=automation.description,
        tags=", ".join(automation.tags),
        enabled=automation.enabled,
        allow_self_trigger=automation.allow_self_trigger,
    )
    action_initial = [
        ActionForm.initial_for(a, resolves=is_resolved(a, automation.actions_on_resolve))
        for a in automation.actions
    ]
    return _form_page(
        request, automation=automation, initial=initial, action_initial=action_initial
    )


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def automation_delete(request: HttpRequest, automation_id: uuid.UUID) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=automation_id)
    changes.delete(automation)
    messages.success(request, f"Deleted “{automation.name}”.")
    return redirect("automations:list")


@login_required
@require_POST
@capability_required(Capability.MANAGE)
def automation_test_action(
    request: HttpRequest, automation_id: uuid.UUID, index: int
) -> HttpResponse:
    """Run one action now, as if the automation had fired on its latest triggering event."""
    automation = get_object_or_404(Automation, pk=automation_id)
    entry = next(((s, i, a) for s, i, a in automation.all_actions() if i == index), None)
    if entry is None:
        raise Http404("No such action.")
    run = action_kinds.send_test(automation, entry)
    if request.htmx:
        return render(request, "automations/_test_result.html", {"tested": run})
    if run.status == ActionRun.Status.SUCCEEDED:
        messages.success(request, f"Test of action #{index} succeeded: {run.result_excerpt}")
    else:
        messages.error(request, f"Test of action #{index}: {run.status}: {run.last_error}")
    url = reverse("automations:detail", args=[automation.id])
    return redirect(f"{url}?tested={run.id}#test-result")


@login_required
def automation_explain(request: HttpRequest, automation_id: uuid.UUID) -> HttpResponse:
    automation = get_object_or_404(Automation, pk=automation_id)
    result = error = None
    if raw := request.GET.get("event", "").strip():
        try:
            row = queries.event(uuid.UUID(raw))
        except ValueError:
            row = None
        if row is None:
            error = "No stored event has that id."
        else:
            result = explain.explain_stored(automation, row)
            result["row"] = row
    return render(
        request,
        "automations/explain.html",
        {
            "automation": automation,
            "result": result,
            "error": error,
            "event_id": raw,
            "candidates": explain.candidates(automation),
        },
    )


@login_required
@require_POST
def automation_preview(request: HttpRequest) -> HttpResponse:
    """The form's preview: every firing this trigger would have made over the stored events."""
    form = AutomationForm(request.POST)
    form.is_valid()
    window = request.POST.get("preview_window", "24h")
    window = window if window in PREVIEW_WINDOWS else "24h"
    try:
        page = max(int(request.POST.get("preview_page", "1")), 1)
    except ValueError:
        page = 1
    context: dict = {"window": window, "windows": list(PREVIEW_WINDOWS), "error": None}
    try:
        trigger = form.trigger_data()
        now = timezone.now()
        asked = now - PREVIEW_WINDOWS[window]
        result = explain.preview(trigger, since=asked, until=now)
    except TriggerInvalid as exc:
        context["error"] = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    except forms.ValidationError as exc:  # unreadable input (JSON, label lines)
        context["error"] = "; ".join(m for msgs in exc.message_dict.values() for m in msgs)
    else:
        context.update(_preview_context(result, asked=asked, now=now, page=page))
    return render(request, "automations/_preview.html", context)


def _preview_context(result: dict, *, asked: datetime, now: datetime, page: int) -> dict:
    """The page of firings shown, and the timeline: firings and the data horizon as % of the
    window asked for."""
    span = (now - asked).total_seconds() or 1.0

    def position(value: str) -> float:
        seconds = (datetime.fromisoformat(value) - asked).total_seconds()
        return round(min(max(seconds / span * 100, 0.0), 100.0), 2)

    firings = result["firings"]
    pages = max((len(firings) + PREVIEW_PAGE - 1) // PREVIEW_PAGE, 1)
    page = min(page, pages)
    shown = firings[(page - 1) * PREVIEW_PAGE : page * PREVIEW_PAGE]
    horizon = result["horizon"]
    return {
        "preview": result,
        "shown": [f | {"at": datetime.fromisoformat(f["occurred"])} for f in shown],
        "page": page,
        "pages": pages,
        "shown_start": (page - 1) * PREVIEW_PAGE + 1,
        "marks": sorted({position(f["occurred"]) for f in firings}),
        "horizon_at": datetime.fromisoformat(horizon) if horizon else None,
        "horizon_pos": position(horizon) if horizon else 100.0,
        "clipped": horizon is not None and datetime.fromisoformat(horizon) > asked,
    }


@login_required
def caused_by(request: HttpRequest, event_id: uuid.UUID) -> HttpResponse:
    """The firings an event caused (it is their triggering event), for its event page."""
    firings = (
        Firing.objects.filter(triggering_event_id=event_id)
        .select_related("automation")
        .order_by("-triggered")[:50]
    )
    return render(request, "automations/_caused_by.html", {"firings": firings})


@login_required
def firing_detail(request: HttpRequest, firing_id: uuid.UUID) -> HttpResponse:
    """One firing traced: event → firing → each action run and its attempts → resulting events."""
    firing = get_object_or_404(Firing.objects.select_related("automation"), pk=firing_id)
    runs = list(firing.action_runs.prefetch_related("deliveries"))
    ids = [firing.triggered_event_id, *(r.triggered_event_id for r in runs)]
    resulting = [e for e in (queries.event(i) for i in ids if i) if e is not None]
    known = {e.id for e in resulting}
    for leader in list(resulting):  # what each emitted event led to (an action's outcome)
        more = [e for e in queries.followers(leader, limit=20) if e.id not in known]
        known |= {e.id for e in more}
        resulting += more
    return render(
        request,
        "automations/firing.html",
        {
            "firing": firing,
            "automation": firing.automation,
            "triggering": queries.event(firing.triggering_event_id)
            if firing.triggering_event_id
            else None,
            "runs": [
                {"run": r, "deliveries": sorted(r.deliveries.all(), key=lambda d: d.attempt)}
                for r in runs
            ],
            "resulting": resulting,
            "absences": explain.absences_of(firing),
        },
    )
