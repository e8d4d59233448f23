from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import set_language

from apps.users import services
from apps.users.forms import ProfileForm
from apps.users.models import User


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    # A fresh copy: a form that fails validation must leave request.user untouched.
    user = User.objects.get(pk=request.user.pk)
    form = ProfileForm(request.POST or None, request.FILES or None, instance=user)
    if request.method == "POST" and form.is_valid():
        user = services.user_profile_update(
            user=User.objects.get(pk=request.user.pk),
            display_name=form.cleaned_data["display_name"],
            language=form.cleaned_data["language"],
            time_zone=form.cleaned_data["time_zone"],
            avatar=request.FILES.get("avatar"),
            remove_avatar=form.cleaned_data["remove_avatar"],
        )
        messages.success(request, _("Your profile was saved."))
        response = redirect("users:profile")
        if user.language:
            response.set_cookie(settings.LANGUAGE_COOKIE_NAME, user.language, samesite="Lax")
        return response
    return render(request, "users/profile.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """Django's set_language; a signed-in user's choice is kept on the profile too."""
    response = set_language(request)
    chosen = request.POST.get("language", "")
    if request.user.is_authenticated and chosen in User.Language.values:
        services.user_language_set(user=request.user, language=chosen)
    return response
