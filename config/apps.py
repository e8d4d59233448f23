from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class SwitchboardAdminConfig(AdminConfig):
    """The Django admin, branded as the operators' console."""

    default_site = "config.admin.SwitchboardAdminSite"


class SwitchboardConfig(AppConfig):
    """Project-wide plumbing: health checks, the embedded worker and the `serve` command."""

    name = "config"
    label = "switchboard"
    verbose_name = "Switchboard"
