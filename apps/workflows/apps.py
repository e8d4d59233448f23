from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """Workflows: mutable drafts and immutable published versions (filled by the engine issue)."""

    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows"
