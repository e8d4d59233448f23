from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    """Runs of workflow versions, their node executions and events; the engine and its actors."""

    name = "apps.executions"
    label = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.executions.metrics import ExecutionCollector

        if not any(isinstance(c, ExecutionCollector) for c in list(REGISTRY._collector_to_names)):
            REGISTRY.register(ExecutionCollector())
