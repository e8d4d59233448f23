from __future__ import annotations

from allauth.account.adapter import get_adapter
from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.utils.translation import gettext_lazy as _

from apps.users.models import User
from apps.users.validators import time_zone_names


class OperatorLoginForm(AdminAuthenticationForm):
    """The admin's login form, authenticating through allauth: one rate limit, one audit trail."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            adapter = get_adapter(self.request)
            self.user_cache = adapter.authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class ProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(label=_("Time zone"), required=False)
    remove_avatar = forms.BooleanField(label=_("Remove the current avatar"), required=False)

    class Meta:
        model = User
        fields = ["display_name", "avatar", "language", "time_zone"]
        widgets = {"avatar": forms.FileInput(attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [("", _("Platform default")), *((n, n) for n in time_zone_names())]
