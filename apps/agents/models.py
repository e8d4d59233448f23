from __future__ import annotations

import hmac

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.agents import crypto
from apps.agents.managers import AgentQuerySet, CredentialQuerySet, OwnedQuerySet


class Credential(models.Model):
    """
    A secret a user lends to their agents and workflows: stored encrypted, never shown again.

    `client_id` is the identifier a client that syncs its set of credentials gave it (unique per
    owner when set). A revoked credential keeps its row, so its history stays readable, but no run
    may use it until a sync gives it a new secret.
    """

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
    client_id = models.CharField(
        _("client id"), max_length=200, blank=True, help_text=_("The syncing client's own identifier for it.")
    )
    # HMAC of the secret under a key derived from the newest CREDENTIAL_KEYS key: a sync compares
    # pushed secrets with it instead of decrypting every stored one.
    secret_digest = models.CharField(max_length=64, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CredentialQuerySet.as_manager()

    class Meta:
        verbose_name = _("credential")
        verbose_name_plural = _("credentials")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="credential_unique_name_per_owner"),
            models.UniqueConstraint(
                fields=["owner", "client_id"],
                condition=~models.Q(client_id=""),
                name="credential_unique_client_id_per_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def __repr__(self) -> str:
        return f"<Credential {self.pk} {self.kind} {self.name!r}>"  # never the secret

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def set_secret(self, secret: str) -> None:
        self.encrypted_secret = crypto.encrypt(secret)
        self.secret_digest = crypto.digest(secret)
        self.secret_hint = f"…{secret[-4:]}" if len(secret) >= 12 else "…"

    def reveal_secret(self) -> str:
        """The plaintext, for the engine only; never log, render or return it."""
        return crypto.decrypt(self.encrypted_secret)

    def holds_secret(self, secret: str) -> bool:
        """
        Whether `secret` is the stored one: by the digest when it matches, else by decrypting (a
        digest made under an older key, or none yet). An unreadable secret holds nothing.
        """
        if crypto.digest_matches(secret, self.secret_digest):
            return True
        try:
            return hmac.compare_digest(self.reveal_secret().encode(), secret.encode())
        except crypto.SecretUnreadable:
            return False


class CredentialEvent(models.Model):
    """
    The audit trail of credentials, insert-only: who created, changed, used, revoked, rotated or
    deleted which one. It outlives the credential: the link becomes NULL, the copied id and name stay.
    `actor` is NULL for the engine and for management commands.
    """

    class Action(models.TextChoices):
        CREATE = "create", _("created")
        UPDATE = "update", _("updated")
        USE = "use", _("used")
        REVOKE = "revoke", _("revoked")
        DELETE = "delete", _("deleted")
        ROTATE = "rotate", _("re-encrypted")

    credential = models.ForeignKey(
        Credential, on_delete=models.SET_NULL, null=True, blank=True, related_name="events", db_index=False
    )
    credential_pk = models.BigIntegerField(_("credential id"))
    credential_name = models.CharField(_("credential name"), max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credential_events", verbose_name=_("owner")
    )
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    # Ids, not foreign keys: the trail outlives runs, and agents never import executions.
    execution_id = models.UUIDField(_("run"), null=True, blank=True)
    node_id = models.CharField(_("node"), max_length=64, blank=True)
    changed_fields = models.JSONField(_("changed fields"), default=list, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("credential event")
        verbose_name_plural = _("credential events")
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The latest use of each credential (the list's "last used"), and each owner's trail.
            models.Index(fields=["credential", "action", "-created_at"], name="credentialevent_cred_action"),
            models.Index(fields=["owner", "-created_at"], name="credentialevent_owner_created"),
        ]

    def __str__(self) -> str:
        return f"{self.credential_name} {self.action} {self.created_at:%Y-%m-%d %H:%M:%S}"


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


# --- the tool catalogue: HTTP tools and MCP servers -------------------------------------------------

# Headers that carry secrets: their values come from HTTP header credentials, never plain fields.
SECRET_HEADER_WORDS = ("authorization", "cookie", "token", "secret", "api-key", "apikey", "password")
URL_PLACEHOLDER = r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}"


class ToolQuerySet(OwnedQuerySet):
    def with_credentials(self) -> ToolQuerySet:
        return self.prefetch_related("credentials")


class Tool(models.Model):
    """
    An entry of a user's tool catalogue, named in an agent's `tools`: an HTTP tool (one templated
    request; `http:<id>`) or an MCP server (each of its tools is `mcp:<id>:<tool name>`).

    No secret is stored here: header values come from the owner's HTTP header credentials, read
    inside each call. A `stdio` server runs a command on the worker, so only operators define one
    (in the admin); the API refuses it.
    """

    class Kind(models.TextChoices):
        HTTP = "http", _("HTTP tool")
        MCP = "mcp", _("MCP server")

    class Transport(models.TextChoices):
        STREAMABLE_HTTP = "streamable_http", _("Streamable HTTP")
        STDIO = "stdio", _("stdio (a command on the worker)")

    class Method(models.TextChoices):
        GET = "GET", "GET"
        POST = "POST", "POST"
        PUT = "PUT", "PUT"
        PATCH = "PATCH", "PATCH"
        DELETE = "DELETE", "DELETE"

    # What its owner sets (the admin's form and the API edit the same fields).
    SETTINGS = (
        "kind",
        "name",
        "description",
        "enabled",
        "timeout_seconds",
        "credentials",
        "headers",
        "method",
        "url_template",
        "input_schema",
        "transport",
        "url",
        "command",
        "args",
    )

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tools")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True, help_text=_("What the model reads to choose it."))
    enabled = models.BooleanField(_("enabled"), default=True)
    timeout_seconds = models.PositiveSmallIntegerField(
        _("timeout (seconds)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text=_("For each request or MCP call."),
    )
    credentials = models.ManyToManyField(
        Credential,
        blank=True,
        related_name="tools",
        verbose_name=_("header credentials"),
        help_text=_("HTTP header credentials: each sends its header with every request."),
    )
    headers = models.JSONField(_("headers"), default=dict, blank=True, help_text=_("Other headers, never secrets."))
    # HTTP tools
    method = models.CharField(_("method"), max_length=8, choices=Method.choices, blank=True)
    url_template = models.CharField(
        _("URL template"), max_length=2000, blank=True, help_text=_("{name} is replaced by that argument, escaped.")
    )
    input_schema = models.JSONField(_("input schema"), default=dict, blank=True, help_text=_("A JSON Schema object."))
    # MCP servers
    transport = models.CharField(_("transport"), max_length=32, choices=Transport.choices, blank=True)
    # Not a URLField: its validator refuses single-label hosts (`http://mcp:8000/mcp`), which
    # internal servers often have (reachable once EGRESS_ALLOW names them).
    url = models.CharField(_("URL"), max_length=2000, blank=True, help_text=_("Streamable HTTP endpoint."))
    command = models.CharField(_("command"), max_length=500, blank=True, help_text=_("stdio: the program to run."))
    args = models.JSONField(_("arguments"), default=list, blank=True, help_text=_("stdio: its arguments."))
    listed_tools = models.JSONField(_("listed tools"), default=list, blank=True, editable=False)
    listed_at = models.DateTimeField(_("tools listed"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ToolQuerySet.as_manager()

    class Meta:
        verbose_name = _("tool")
        verbose_name_plural = _("tools")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="tool_unique_name_per_owner"),
            models.CheckConstraint(condition=models.Q(kind__in=["http", "mcp"]), name="tool_kind_known"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def is_stdio(self) -> bool:
        return self.kind == self.Kind.MCP and self.transport == self.Transport.STDIO

    def agent_tool_names(self) -> list[str]:
        """What an agent's `tools` list names to use this entry (an MCP server: its listed tools)."""
        if self.kind == self.Kind.HTTP:
            return [f"http:{self.pk}"]
        return [f"mcp:{self.pk}:{tool['name']}" for tool in self.listed_tools]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not isinstance(self.headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            errors["headers"] = _("Headers must be an object of header names and text values.")
        elif secret := [k for k in self.headers if any(word in k.lower() for word in SECRET_HEADER_WORDS)]:
            errors["headers"] = _("%(h)s may carry a secret: send it with an HTTP header credential.") % {
                "h": ", ".join(secret)
            }
        if self.kind == self.Kind.HTTP:
            errors.update(self._http_problems())
        elif self.kind == self.Kind.MCP:
            errors.update(self._mcp_problems())
        if errors:
            raise ValidationError(errors)

    def _http_problems(self) -> dict[str, str]:
        import re

        import jsonschema

        errors: dict[str, str] = {}
        if not self.method:
            errors["method"] = _("An HTTP tool needs a method.")
        if not self.url_template.startswith(("http://", "https://")):
            errors["url_template"] = _("The URL template must start with http:// or https://.")
        schema = self.input_schema or {"type": "object", "properties": {}}
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
            if schema.get("type") != "object":
                raise jsonschema.SchemaError("the input schema's type must be object")
        except (jsonschema.SchemaError, AttributeError) as exc:
            errors["input_schema"] = _("Not a usable JSON Schema: %(e)s") % {"e": getattr(exc, "message", exc)}
        else:
            declared, required = set(schema.get("properties") or {}), set(schema.get("required") or [])
            if missing := [p for p in re.findall(URL_PLACEHOLDER, self.url_template) if p not in declared & required]:
                errors["url_template"] = _("Placeholders must be required properties of the input schema: %(p)s") % {
                    "p": ", ".join(missing)
                }
        for field in ("transport", "url", "command", "args"):
            if getattr(self, field):
                errors[field] = _("Only MCP servers have this.")
        return errors

    def _mcp_problems(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for field in ("method", "url_template", "input_schema"):
            if getattr(self, field):
                errors[field] = _("Only HTTP tools have this.")
        if self.transport == self.Transport.STREAMABLE_HTTP:
            if not self.url.startswith(("http://", "https://")):
                errors["url"] = _("A streamable HTTP server needs an http:// or https:// URL.")
            if self.command or self.args:
                errors["command"] = _("Only stdio servers run a command.")
        elif self.transport == self.Transport.STDIO:
            if not self.command.strip():
                errors["command"] = _("A stdio server needs a command.")
            if not isinstance(self.args, list) or not all(isinstance(arg, str) for arg in self.args):
                errors["args"] = _("Arguments must be a list of texts.")
            if self.url or self.headers:
                errors["url"] = _("A stdio server has no URL or headers.")
        else:
            errors["transport"] = _("An MCP server needs a transport: streamable_http or stdio.")
        return errors
