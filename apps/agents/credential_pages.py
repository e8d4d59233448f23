"""
The credentials pages (`/credentials/`): list, add, replace the secret, delete.

A secret goes in and never comes out: forms use password inputs that are not re-rendered, pages
show only `secret_hint`. Every change goes through apps.agents.services, as the API's, so each one
writes its CredentialEvent (the audit trail) with the signed-in user as the actor.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_safe

from apps.agents import services
from apps.agents.models import Credential

# Which kinds use the optional fields; the form shows only those (account.js), the service checks them.
BASE_URL_KINDS = (Credential.Kind.OLLAMA, Credential.Kind.OPENAI_COMPATIBLE, Credential.Kind.OPENAI)
HEADER_KINDS = (Credential.Kind.HTTP_HEADER,)


def _secret_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=10_000,
        strip=False,
        # Never re-rendered: a form that fails shows an empty secret field, not what was typed.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=gettext_lazy("Stored encrypted and never shown again. Ollama needs none."),
    )


class CredentialForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"),
        choices=Credential.Kind.choices,
        widget=forms.Select(attrs={"data-credential-kind": ""}),
    )
    secret = _secret_field(gettext_lazy("Secret"))
    base_url = forms.URLField(
        label=gettext_lazy("Base URL"),
        required=False,
        max_length=200,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"data-kinds": " ".join(BASE_URL_KINDS), "placeholder": "https://"}),
        help_text=gettext_lazy("The endpoint, for Ollama and OpenAI-compatible servers (optional for OpenAI)."),
    )
    header_name = forms.CharField(
        label=gettext_lazy("Header name"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"data-kinds": " ".join(HEADER_KINDS), "placeholder": "Authorization"}),
        help_text=gettext_lazy("For HTTP header credentials: the header the secret is sent in."),
    )


class SecretForm(forms.Form):
    secret = _secret_field(gettext_lazy("New secret"))


def _apply_errors(form: forms.Form, exc: ValidationError) -> None:
    """A service's errors on the form's fields; one on a field the form lacks goes on top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.message_dict.items():
        form.add_error(name if name in form.fields else None, errors)


def _owned(request: HttpRequest, pk: int) -> Credential:
    return get_object_or_404(Credential.objects.visible_to(request.user), pk=pk)


@require_safe
@login_required
def credential_list(request: HttpRequest) -> HttpResponse:
    """The user's credentials with their last use: one query whatever their number."""
    credentials = list(services.credentials_listed(request.user).order_by("name", "pk"))
    return render(request, "agents/credential_list.html", {"credentials": credentials})


@login_required
@require_http_methods(["GET", "POST"])
def credential_create(request: HttpRequest) -> HttpResponse:
    form = CredentialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            credential = services.credential_create(owner=request.user, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("The credential “%(name)s” was added.") % {"name": credential.name})
            return redirect("agents:credential_list")
    status = 400 if form.errors else 200
    return render(request, "agents/credential_form.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def credential_secret(request: HttpRequest, pk: int) -> HttpResponse:
    """Replace the secret (the old one is never shown); a new secret also lifts a revocation, as a sync's does."""
    credential = _owned(request, pk)
    form = SecretForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        secret = form.cleaned_data["secret"]
        if not secret and credential.kind != Credential.Kind.OLLAMA:
            form.add_error("secret", _("This kind of credential needs a secret."))
        else:
            changed = ["secret", "secret_hint"]
            credential.set_secret(secret)
            if credential.is_revoked:
                credential.revoked_at = None
                changed.append("revoked_at")
            services.credential_update(credential=credential, changed_fields=changed, actor=request.user)
            messages.success(request, _("The secret of “%(name)s” was replaced.") % {"name": credential.name})
            return redirect("agents:credential_list")
    status = 400 if form.errors else 200
    return render(request, "agents/credential_secret.html", {"form": form, "credential": credential}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def credential_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: ask to confirm. POST: delete (the audit trail stays; agents that used it have none)."""
    credential = _owned(request, pk)
    if request.method == "POST":
        name = credential.name
        services.credential_delete(credential=credential, actor=request.user)
        messages.success(request, _("The credential “%(name)s” was deleted.") % {"name": name})
        return redirect("agents:credential_list")
    context: dict[str, Any] = {"credential": credential, "agent_count": credential.agents.count()}
    return render(request, "agents/credential_delete.html", context)


urlpatterns = [
    path("credentials/", credential_list, name="credential_list"),
    path("credentials/new/", credential_create, name="credential_create"),
    path("credentials/<int:pk>/secret/", credential_secret, name="credential_secret"),
    path("credentials/<int:pk>/delete/", credential_delete, name="credential_delete"),
]
