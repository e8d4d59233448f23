"""
The agent form of the pages. It checks only what a form must (types, the owner's credentials and
catalogue entries, as the API's AgentInput does); the rules themselves are the services' and the
model's, whose errors `save` puts back on the field they name.
"""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from apps.agents import services
from apps.agents import tools as builtin_tools
from apps.agents.mcp import check_agent_tools
from apps.agents.models import Agent, Credential, Tool
from apps.agents.providers import PROVIDERS
from apps.agents.validators import holds_nul

PROVIDER_LABELS = {
    "scripted": _("Scripted (answers from its script, for tests)"),
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "ollama": "Ollama",
    "openai_compatible": _("OpenAI-compatible"),
}


def tool_choices(user: Any, current: list[str] | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """Built-in tools, then each catalogue entry's agent tool names; names the agent has keep a box."""
    built_in = [(name, name) for name in sorted(builtin_tools.TOOLS)]
    catalogue = []
    for tool in Tool.objects.visible_to(user).only("id", "kind", "name", "listed_tools"):
        for name in tool.agent_tool_names():
            catalogue.append((name, f"{tool.name} · {name}"))
    known = {name for name, _label in built_in + catalogue}
    kept = [(name, name) for name in current or [] if name not in known]
    groups = [(_("Built-in tools"), built_in)]
    if catalogue or kept:
        groups.append((_("Your tool catalogue"), catalogue + kept))
    return groups


class AgentForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    provider = forms.ChoiceField(label=_("Provider"), choices=[(p, PROVIDER_LABELS.get(p, p)) for p in PROVIDERS])
    model = forms.CharField(
        label=_("Model"), max_length=200, help_text=_("The provider's model name, e.g. gpt-4o-mini or claude-sonnet-4.")
    )
    credential = forms.ModelChoiceField(
        label=_("Credential"),
        queryset=Credential.objects.none(),
        required=False,
        empty_label=_("None"),
        help_text=_("The key the provider is called with; scripted and local Ollama need none."),
        error_messages={"invalid_choice": _("No such credential of yours exists.")},
    )
    system_prompt = forms.CharField(
        label=_("System prompt"), required=False, strip=False, widget=forms.Textarea(attrs={"rows": 6})
    )
    parameters = forms.JSONField(
        label=_("Parameters"),
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "is-code"}),
        help_text=_('A JSON object, e.g. {"temperature": 0.2, "max_tokens": 500}; for scripted: {"replies": ["…"]}.'),
    )
    tools = forms.MultipleChoiceField(
        label=_("Tools"), required=False, widget=forms.CheckboxSelectMultiple, help_text=_("What the agent may call.")
    )
    max_iterations = forms.IntegerField(
        label=_("Max iterations"),
        min_value=1,
        max_value=50,
        initial=Agent._meta.get_field("max_iterations").default,
        help_text=_("Model and tool steps before the agent must answer."),
    )

    def __init__(self, *args: Any, user: Any, agent: Agent | None = None, **kwargs: Any) -> None:
        if agent is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: getattr(agent, name) for name in services.AGENT_FIELDS}
        super().__init__(*args, **kwargs)
        self.user = user
        self.agent = agent
        # Another user's credential is "no such credential", exactly like an id nobody has.
        self.fields["credential"].queryset = Credential.objects.visible_to(user)
        self.fields["tools"].choices = tool_choices(user, agent.tools if agent else None)

    def clean_parameters(self) -> dict:
        value = self.cleaned_data.get("parameters")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError(_("Parameters must be a JSON object."))
        if holds_nul(value):
            raise ValidationError(_("Null characters are not allowed."))
        return value

    def clean_tools(self) -> list[str]:
        value = list(self.cleaned_data.get("tools") or [])
        if problems := check_agent_tools(owner_id=self.user.pk, names=value):
            raise ValidationError(problems)
        return value

    def save(self) -> Agent | None:
        """Create or change the agent through the services; None, with the errors on the form, if refused."""
        try:
            if self.agent is None:
                return services.agent_create(owner=self.user, values=self.cleaned_data)
            # A copy: a refused change must not show through the page's other parts (its title).
            return services.agent_update(agent=copy.copy(self.agent), values=self.cleaned_data)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return None
