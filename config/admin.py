from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from apps.users.forms import OperatorLoginForm


class SwitchboardAdminSite(admin.AdminSite):
    """The operators' console: users, runs, prices, plans, credits, keys and audit trails."""

    site_header = _("Switchboard operations")
    site_title = _("Switchboard operations")
    index_title = _("Operate the platform")
    # Same rate limit and login records as the user-facing login page.
    login_form = OperatorLoginForm
