from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.agents import crypto
from apps.agents.managers import AgentQuerySet, CredentialQuerySet


class Credential(models.Model):
    """A secret a user lends to their agents and workflows: stored encrypted, never shown again."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        OLLAMA = "ollama", "Ollama"
        OPENAI_COMPATIBLE = "openai_compatible", _("OpenAI-compatible")
        HTTP_HEADER = "http_header", _("HTTP header")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    encrypted_secret = models.TextField(editable=False)
    secret_hint = models.CharField(
        _("secret hint"), max_length=12, editable=False, help_text=_("The last characters, to tell keys apart.")
    )
    base_url = models.URLField(_("base URL"), blank=True, help_text=_("For Ollama and OpenAI-compatible endpoints."))
    header_name = models.CharField(
        _("header name"), max_length=100, blank=True, help_text=_("For HTTP header credentials, e.g. Authorization.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CredentialQuerySet.as_manager()

    class Meta:
        verbose_name = _("credential")
        verbose_name_plural = _("credentials")
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="credential_unique_name_per_owner")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def __repr__(self) -> str:
        return f"<Credential {self.pk} {self.kind} {self.name!r}>"  # never the secret

    def set_secret(self, secret: str) -> None:
        self.encrypted_secret = crypto.encrypt(secret)
        self.secret_hint = f"…{secret[-4:]}" if len(secret) >= 12 else "…"

    def reveal_secret(self) -> str:
        """The plaintext, for the engine only; never log, render or return it."""
        return crypto.decrypt(self.encrypted_secret)


class Agent(models.Model):
    """A model, a system prompt and the tools it may call, run as a LangChain tool-calling loop."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    system_prompt = models.TextField(_("system prompt"), blank=True)
    provider = models.CharField(_("provider"), max_length=32, default="scripted")
    model = models.CharField(_("model"), max_length=200)
    parameters = models.JSONField(
        _("parameters"), default=dict, blank=True, help_text=_("temperature, max_tokens, …; for scripted: replies.")
    )
    credential = models.ForeignKey(
        Credential,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="agents",
        verbose_name=_("credential"),
    )
    tools = models.JSONField(_("tools"), default=list, blank=True, help_text=_("Names of the tools it may call."))
    max_iterations = models.PositiveSmallIntegerField(
        _("max iterations"), default=10, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="agent_unique_name_per_owner")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from apps.agents import tools
        from apps.agents.providers import PROVIDERS

        errors = {}
        if self.provider not in PROVIDERS:
            errors["provider"] = _("Unknown provider %(p)s; one of %(all)s.") % {
                "p": self.provider,
                "all": ", ".join(PROVIDERS),
            }
        if not isinstance(self.tools, list) or not all(isinstance(name, str) for name in self.tools):
            errors["tools"] = _("Tools must be a list of tool names.")
        else:
            try:
                tools.resolve(self.tools)
            except ValueError as exc:
                errors["tools"] = str(exc)
        if self.credential_id and self.credential.owner_id != self.owner_id:
            errors["credential"] = _("The credential must belong to the agent's owner.")
        if errors:
            raise ValidationError(errors)
