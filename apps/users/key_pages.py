"""
The API keys page (`/accounts/api-keys/`): the user's keys, a form that creates one, and revocation.

A new key is shown once: the create view keeps it in the session only until the redirected page
has rendered it (popped on that render), so neither a reload nor the list ever shows it again.
Creating and revoking go through apps.users.services, as the API does.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from apps.users import services
from apps.users.models import ApiKey, User

# The session entry that carries a new key from the create POST to the one page that shows it.
NEW_KEY_SESSION = "users.new_api_key"


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=100,
        help_text=gettext_lazy("Say where the key is used, e.g. “CI deploys”."),
    )
    scopes = forms.MultipleChoiceField(
        label=gettext_lazy("Scopes"),
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("Read lists and fetches; write changes agents and workflows; execute starts runs."),
        error_messages={"required": gettext_lazy("Choose at least one scope.")},
    )
    expires_on = forms.DateField(
        label=gettext_lazy("Expires after"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=gettext_lazy("Optional: the last day the key works. Leave empty for a key that does not expire."),
    )

    def __init__(self, *args: Any, zone: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("The key needs a name."))
        return name

    def clean_expires_on(self) -> date | None:
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.now().astimezone(self.zone).date():
            raise ValidationError(_("Choose today or a later day."))
        return day

    def expires_at(self) -> datetime | None:
        """The end of the chosen day in the user's time zone: the key works through that day."""
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return datetime.combine(day + timedelta(days=1), time.min, tzinfo=self.zone)


def keys_listed(user: User) -> list[ApiKey]:
    """The user's keys, newest first: one query whatever their number."""
    return list(
        ApiKey.objects.visible_to(user)
        .only("id", "name", "prefix", "last_four", "scopes", "status", "created_at", "last_used_at", "expires_at")
        .order_by("-created_at", "-pk")
    )


def key_state(api_key: ApiKey, now: datetime) -> str:
    if api_key.status == ApiKey.Status.REVOKED:
        return "revoked"
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return "expired"
    return "active"


def _page(request: HttpRequest, form: ApiKeyForm, *, new_key: dict[str, str] | None, status: int = 200) -> HttpResponse:
    now = timezone.now()
    keys = keys_listed(request.user)
    scope_labels = dict(ApiKey.Scope.choices)
    rows = [
        {
            "key": api_key,
            "state": key_state(api_key, now),
            "scope_labels": [scope_labels.get(scope, scope) for scope in api_key.scopes],
        }
        for api_key in keys
    ]
    context = {"form": form, "rows": rows, "new_key": new_key}
    return render(request, "users/api_keys.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def apikey_list(request: HttpRequest) -> HttpResponse:
    """GET: the keys and the create form (and a new key, once). POST: create a key."""
    # The user's zone: apps.users.middleware activates it for signed-in users.
    zone = timezone.get_current_timezone()
    if request.method == "GET":
        new_key = request.session.pop(NEW_KEY_SESSION, None)
        return _page(request, ApiKeyForm(zone=zone), new_key=new_key)
    form = ApiKeyForm(request.POST, zone=zone)
    if form.is_valid():
        try:
            api_key, key = services.api_key_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            request.session[NEW_KEY_SESSION] = {"name": api_key.name, "key": key}
            messages.success(request, _("The key “%(name)s” was created.") % {"name": api_key.name})
            return redirect("users:apikey_list")
    return _page(request, form, new_key=None, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def apikey_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: ask to confirm. POST: revoke (the row stays, for the record)."""
    api_key = get_object_or_404(ApiKey.objects.visible_to(request.user), pk=pk)
    if request.method == "POST":
        if services.api_key_revoke(api_key=api_key):
            messages.success(request, _("The key “%(name)s” was revoked.") % {"name": api_key.name})
        else:
            messages.info(request, _("The key “%(name)s” was already revoked.") % {"name": api_key.name})
        return redirect("users:apikey_list")
    return render(request, "users/api_keys_revoke.html", {"api_key": api_key})
