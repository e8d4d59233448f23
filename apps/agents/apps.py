from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """Agents and the credentials they use (filled by the engine issue)."""

    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"
