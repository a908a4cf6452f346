"""Saved views (create from the feed, open by link, list, delete) and display preferences."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from events.personal.forms import PreferenceForm, SavedViewForm
from events.personal.models import Preference, SavedView
from eventsite.links import public_url


@login_required
def saved_views(request: HttpRequest) -> HttpResponse:
    """Your saved views; POST saves the feed's current filters under a name (a name you used
    before gets the new filters)."""
    if request.method == "POST":
        form = SavedViewForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            view, created = SavedView.objects.update_or_create(
                owner=request.user,
                name=data["name"],
                defaults={"page": data["page"], "query": SavedView.clean_query(data["query"])},
            )
            word = "saved" if created else "updated"
            messages.success(request, f"View “{view.name}” {word}. Its link opens these filters.")
            return redirect(view.url)
        status = 400
    else:
        form, status = SavedViewForm(), 200
    views = list(SavedView.objects.filter(owner=request.user))
    for view in views:
        view.share_url = public_url(reverse("personal:open-view", args=[view.pk]), request=request)
    return render(
        request, "personal/saved_views.html", {"views": views, "form": form}, status=status
    )


@login_required
def open_view(request: HttpRequest, view_id: uuid.UUID) -> HttpResponse:
    """A shared link: the feed with the view's filters, for anyone signed in."""
    view = get_object_or_404(SavedView, pk=view_id)
    return redirect(view.url)


@login_required
@require_POST
def delete_view(request: HttpRequest, view_id: uuid.UUID) -> HttpResponse:
    view = get_object_or_404(SavedView, pk=view_id, owner=request.user)
    view.delete()
    messages.success(request, f"View “{view.name}” deleted.")
    return redirect("personal:views")


@login_required
@require_POST
def preferences(request: HttpRequest) -> HttpResponse:
    """Save how times read (time zone, relative times); htmx gets 204, a form goes back."""
    form = PreferenceForm(request.POST, instance=Preference.of(request.user))
    if not form.is_valid():
        errors = "; ".join(f"{f}: {m}" for f, ms in form.errors.items() for m in ms)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    form.save()
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("/events/")
