from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    """Runs of workflow versions, their node executions and events (filled by the engine issue)."""

    name = "apps.executions"
    label = "executions"
    verbose_name = "Executions"
