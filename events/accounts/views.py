"""Account pages: the login page (throttled) and the person's API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from events.accounts.models import ApiToken
from events.accounts.roles import scopes_for
from events.accounts.throttle import ThrottledAuthenticationForm

login = auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm)


# --- API tokens ----------------------------------------------------------------------------------


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses this token, e.g. “ci-pipeline” or “laptop”.",
    )
    scope = forms.ChoiceField(
        required=False,
        help_text="What the token may do: your role, or less. An SDK or a Prefect client needs "
        "only “Write events only”.",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scope"].choices = scopes_for(user)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List the person's API tokens; create one (its secret is shown on this response only)."""
    secret = None
    created = None
    if request.method == "POST":
        form = TokenForm(request.POST, user=request.user)
        if form.is_valid():
            created, secret = ApiToken.issue(
                request.user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"] or "",
            )
            form = TokenForm(user=request.user)
    else:
        form = TokenForm(user=request.user)
    response = render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "tokens": ApiToken.objects.filter(user=request.user),
            "secret": secret,
            "created": created,
        },
    )
    if secret:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoked is None:
        token.revoke()
        messages.success(request, f"Token “{token.name}” revoked; it no longer works.")
    return redirect("account:tokens")
