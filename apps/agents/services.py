"""Agents and credentials: creating and changing them under the model's rules, one error per field."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from apps.agents.models import Agent, Credential
from apps.users.models import User

AGENT_FIELDS = (
    "name",
    "description",
    "system_prompt",
    "provider",
    "model",
    "parameters",
    "credential",
    "tools",
    "max_iterations",
)


def _save_unique_name(instance: Agent | Credential, message: str) -> None:
    """
    Save; a second object of the owner's with this name is an error on `name`. Checked first for a
    clear message, and again by the constraint, which catches two requests racing for one name.
    """
    siblings = type(instance).objects.filter(owner_id=instance.owner_id, name=instance.name).exclude(pk=instance.pk)
    if siblings.exists():
        raise ValidationError({"name": message})
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        if siblings.exists():
            raise ValidationError({"name": message}) from exc
        raise


def _agent_check(agent: Agent) -> None:
    # `owner` is set by the service, never by the caller; the (owner, name) constraint is checked
    # by _save_unique_name, which names the field.
    agent.full_clean(exclude=["owner"], validate_constraints=False)
    if agent.credential_id and agent.credential.kind == Credential.Kind.HTTP_HEADER:
        raise ValidationError({"credential": _("An HTTP header credential cannot sign in to a model provider.")})


def agent_create(*, owner: User, values: dict[str, Any]) -> Agent:
    """A new agent of `owner`'s; `values` are the AGENT_FIELDS to set (the others keep their defaults)."""
    agent = Agent(owner=owner, **{name: values[name] for name in AGENT_FIELDS if name in values})
    _agent_check(agent)
    _save_unique_name(agent, _("You already have an agent with this name."))
    return agent


def agent_update(*, agent: Agent, values: dict[str, Any]) -> Agent:
    """Change the given AGENT_FIELDS; on an error nothing is saved."""
    for name in AGENT_FIELDS:
        if name in values:
            setattr(agent, name, values[name])
    _agent_check(agent)
    _save_unique_name(agent, _("You already have an agent with this name."))
    return agent


def _credential_check(credential: Credential, secret: str) -> None:
    errors: dict[str, str] = {}
    kind = credential.kind
    if not secret and kind != Credential.Kind.OLLAMA:
        errors["secret"] = _("This kind of credential needs a secret.")
    if kind == Credential.Kind.OPENAI_COMPATIBLE and not credential.base_url:
        errors["base_url"] = _("An OpenAI-compatible credential needs the endpoint's base URL.")
    if kind == Credential.Kind.HTTP_HEADER and credential.base_url:
        errors["base_url"] = _("An HTTP header credential has no base URL; the node names the URL.")
    if kind != Credential.Kind.HTTP_HEADER and credential.header_name:
        errors["header_name"] = _("Only HTTP header credentials name a header.")
    if errors:
        raise ValidationError(errors)
    credential.full_clean(exclude=["owner", "encrypted_secret", "secret_hint"], validate_constraints=False)


def credential_create(
    *, owner: User, name: str, kind: str, secret: str, base_url: str = "", header_name: str = ""
) -> Credential:
    """Store a secret, encrypted; only `secret_hint` (its last characters) can be shown again."""
    credential = Credential(owner=owner, name=name, kind=kind, base_url=base_url, header_name=header_name)
    _credential_check(credential, secret)
    credential.set_secret(secret)
    _save_unique_name(credential, _("You already have a credential with this name."))
    return credential
