"""Agents and credentials: creating and changing them under the model's rules, one error per field."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.agents import crypto
from apps.agents.models import Agent, Credential, CredentialEvent
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


# --- credentials -----------------------------------------------------------------------------


def _credential_check(credential: Credential, secret: str | None) -> None:
    """The kind's rules, one error per field; `secret` None: the stored one stays."""
    errors: dict[str, str] = {}
    kind = credential.kind
    if secret is not None and not secret and kind != Credential.Kind.OLLAMA:
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


def _event(
    credential: Credential,
    action: str,
    *,
    actor: User | None = None,
    execution_id: Any = None,
    node_id: str = "",
    changed_fields: list[str] | None = None,
) -> CredentialEvent:
    """An unsaved audit row; the caller saves it in the transaction of the change it describes."""
    return CredentialEvent(
        credential_id=credential.pk,
        credential_pk=credential.pk,
        credential_name=credential.name,
        owner_id=credential.owner_id,
        action=action,
        actor=actor,
        execution_id=execution_id,
        node_id=node_id,
        changed_fields=changed_fields or [],
    )


def credentials_listed(user: Any) -> QuerySet[Credential]:
    """The user's credentials with their last use (time, run, node): one query, whatever the count."""
    uses = CredentialEvent.objects.filter(credential=OuterRef("pk"), action=CredentialEvent.Action.USE).order_by(
        "-created_at", "-pk"
    )
    return Credential.objects.visible_to(user).annotate(
        last_used_at=Subquery(uses.values("created_at")[:1]),
        last_used_execution=Subquery(uses.values("execution_id")[:1]),
        last_used_node=Subquery(uses.values("node_id")[:1]),
    )


@transaction.atomic
def credential_create(
    *,
    owner: User,
    name: str,
    kind: str,
    secret: str,
    base_url: str = "",
    header_name: str = "",
    actor: User | None = None,
) -> Credential:
    """Store a secret, encrypted; only `secret_hint` (its last characters) can be shown again."""
    credential = Credential(owner=owner, name=name, kind=kind, base_url=base_url, header_name=header_name)
    _credential_check(credential, secret)
    credential.set_secret(secret)
    _save_unique_name(credential, _("You already have a credential with this name."))
    _event(credential, CredentialEvent.Action.CREATE, actor=actor).save()
    return credential


def credential_fields_check(credential: Credential) -> None:
    """The kind's rules and the unique name, for forms that change fields besides the secret."""
    _credential_check(credential, None)
    siblings = Credential.objects.filter(owner_id=credential.owner_id, name=credential.name)
    if siblings.exclude(pk=credential.pk).exists():
        raise ValidationError({"name": _("The owner already has a credential with this name.")})


@transaction.atomic
def credential_update(*, credential: Credential, changed_fields: list[str], actor: User | None) -> Credential:
    """Save metadata an operator changed (never the secret), with an `update` event naming the fields."""
    if not changed_fields:
        return credential
    _credential_check(credential, None)
    _save_unique_name(credential, _("You already have a credential with this name."))
    _event(credential, CredentialEvent.Action.UPDATE, actor=actor, changed_fields=changed_fields).save()
    return credential


@transaction.atomic
def credential_delete(*, credential: Credential, actor: User | None) -> None:
    """Delete it (the ciphertext goes with it); its trail stays, and agents that used it have none."""
    _event(credential, CredentialEvent.Action.DELETE, actor=actor).save()
    credential.delete()


@transaction.atomic
def credential_revoke(*, credential: Credential, actor: User | None) -> bool:
    """Stop every run from using it; False (and no event) when it already was revoked."""
    now = timezone.now()
    if not Credential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(revoked_at=now, updated_at=now):
        credential.refresh_from_db(fields=["revoked_at", "updated_at"])
        return False
    credential.revoked_at = credential.updated_at = now
    _event(credential, CredentialEvent.Action.REVOKE, actor=actor).save()
    return True


@transaction.atomic
def credentials_revoke_all(*, owner: User, actor: User | None) -> int:
    """Revoke every credential of `owner` not revoked yet; returns how many."""
    now = timezone.now()
    live = list(
        Credential.objects.select_for_update()
        .filter(owner=owner, revoked_at__isnull=True)
        .order_by("pk")
        .only("pk", "name", "owner_id")
    )
    Credential.objects.filter(pk__in=[credential.pk for credential in live]).update(revoked_at=now, updated_at=now)
    CredentialEvent.objects.bulk_create([_event(c, CredentialEvent.Action.REVOKE, actor=actor) for c in live])
    return len(live)


class CredentialUnavailable(Exception):
    """A run may not use the credential; `code` is machine-readable, the message names no secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def credential_resolve(*, owner_id: int, credential_id: Any, execution_id: Any, node_id: str) -> tuple[Credential, str]:
    """
    The credential and its plaintext for one node of a run, recording the use (one insert).
    Refuses another user's or a missing credential, a revoked one, and one no key decrypts.
    """
    credential = Credential.objects.filter(owner_id=owner_id, pk=credential_id).first()
    if credential is None:
        raise CredentialUnavailable("unknown_credential", f"no credential {credential_id} of yours exists")
    if credential.is_revoked:
        raise CredentialUnavailable(
            "credential_revoked",
            f"credential {credential.pk} ({credential.name}) was revoked; sync a new secret or choose another one",
        )
    try:
        secret = credential.reveal_secret()
    except crypto.SecretUnreadable as exc:
        raise CredentialUnavailable("credential_unreadable", f"credential {credential.pk}: {exc}") from exc
    _event(credential, CredentialEvent.Action.USE, execution_id=execution_id, node_id=node_id).save()
    return credential, secret


# --- sync: a client pushes its whole set -----------------------------------------------------

SYNCED_FIELDS = ("name", "base_url", "header_name")


@dataclass(frozen=True)
class SyncItem:
    client_id: str
    name: str
    kind: str
    secret: str
    base_url: str = ""
    header_name: str = ""


@dataclass(frozen=True)
class SyncOutcome:
    client_id: str
    credential: Credential
    outcome: str  # created, updated or unchanged


@dataclass
class SyncResult:
    items: list[SyncOutcome] = field(default_factory=list)
    deleted: list[tuple[str, int]] = field(default_factory=list)  # (client id, credential id)

    def counts(self) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        for item in self.items:
            counts[item.outcome] += 1
        return {**counts, "deleted": len(self.deleted)}


def credentials_sync(*, owner: User, items: list[SyncItem], prune: bool, actor: User | None) -> SyncResult:
    """
    Upsert `items` by the client's identifier, all or nothing. An item whose fields and secret
    are what is stored changes nothing and writes no event; a new secret lifts a revocation (the
    same secret pushed again does not). With `prune`, synced credentials (those with a client id)
    missing from the set are deleted; credentials made by hand never are. Errors are keyed
    `credentials.<index>.<field>`.
    """
    with transaction.atomic():
        # One sync per owner at a time: the plan below is made from what is stored now.
        User.objects.select_for_update().filter(pk=owner.pk).values_list("pk").first()
        stored = list(Credential.objects.filter(owner=owner).order_by("pk"))
        by_client = {credential.client_id: credential for credential in stored if credential.client_id}
        pushed = {item.client_id for item in items}
        doomed = [c for c in stored if prune and c.client_id and c.client_id not in pushed]
        _sync_check(items, stored, by_client, doomed)
        result = SyncResult(deleted=[(credential.client_id, credential.pk) for credential in doomed])
        try:
            with transaction.atomic():
                for credential in doomed:
                    credential_delete(credential=credential, actor=actor)
                _free_names(items, by_client)
                result.items = [_sync_one(owner, item, by_client.get(item.client_id), actor) for item in items]
        except IntegrityError as exc:
            # Only a create or rename racing in beside the sync gets here (the owner lock stops other syncs).
            raise ValidationError(
                {"credentials": _("Your credentials changed during the sync; send it again.")}
            ) from exc
    return result


def _sync_check(
    items: list[SyncItem], stored: list[Credential], by_client: dict[str, Credential], doomed: list[Credential]
) -> None:
    errors: dict[str, list[str]] = {}
    final_names = {item.client_id: item.name for item in items}
    # Names that stay taken after the sync: credentials it neither updates nor deletes.
    kept = {c.name: c for c in stored if c.client_id not in final_names and c not in doomed}
    seen_ids: set[str] = set()
    seen_names: set[str] = set()
    for index, item in enumerate(items):
        prefix = f"credentials.{index}."
        current = by_client.get(item.client_id)
        if item.client_id in seen_ids:
            errors[prefix + "id"] = [_("Another item of this set has the same id.")]
        if item.name in seen_names:
            errors[prefix + "name"] = [_("Another item of this set has the same name.")]
        elif item.name in kept:
            errors[prefix + "name"] = [
                _("You already have a credential with this name that this sync does not manage.")
            ]
        seen_ids.add(item.client_id)
        seen_names.add(item.name)
        if current is not None and current.kind != item.kind:
            errors[prefix + "kind"] = [
                _("A credential's kind cannot change (this one is %(kind)s); give the item a new id.")
                % {"kind": current.kind}
            ]
        candidate = Credential(
            name=item.name,
            kind=item.kind,
            base_url=item.base_url,
            header_name=item.header_name,
            client_id=item.client_id,
        )
        try:
            _credential_check(candidate, item.secret)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors.setdefault(prefix + name, messages)
    if errors:
        raise ValidationError(errors)


def _free_names(items: list[SyncItem], by_client: dict[str, Credential]) -> None:
    """Move renamed credentials out of the way first, so that two of them may swap names."""
    for item in items:
        current = by_client.get(item.client_id)
        if current is not None and current.name != item.name:
            Credential.objects.filter(pk=current.pk).update(name=f"~sync {current.pk} {uuid.uuid4().hex[:12]}")


def _sync_one(owner: User, item: SyncItem, current: Credential | None, actor: User | None) -> SyncOutcome:
    if current is None:
        credential = Credential(
            owner=owner,
            name=item.name,
            kind=item.kind,
            base_url=item.base_url,
            header_name=item.header_name,
            client_id=item.client_id,
        )
        credential.set_secret(item.secret)
        credential.save()
        _event(credential, CredentialEvent.Action.CREATE, actor=actor).save()
        return SyncOutcome(item.client_id, credential, "created")
    changed = [name for name in SYNCED_FIELDS if getattr(current, name) != getattr(item, name)]
    for name in changed:
        setattr(current, name, getattr(item, name))
    if current.holds_secret(item.secret):
        if not crypto.digest_matches(item.secret, current.secret_digest):
            # Same secret, digest from an older key (or none yet): refresh it quietly.
            current.secret_digest = crypto.digest(item.secret)
            Credential.objects.filter(pk=current.pk).update(secret_digest=current.secret_digest)
    else:
        current.set_secret(item.secret)
        changed += ["secret", "secret_hint"]
        if current.is_revoked:
            current.revoked_at = None
            changed.append("revoked_at")
    if not changed:
        return SyncOutcome(item.client_id, current, "unchanged")
    stored_fields = [name for name in changed if name != "secret"]
    if "secret" in changed:
        stored_fields += ["encrypted_secret", "secret_digest"]
    current.save(update_fields=[*stored_fields, "updated_at"])
    _event(current, CredentialEvent.Action.UPDATE, actor=actor, changed_fields=changed).save()
    return SyncOutcome(item.client_id, current, "updated")


# --- key rotation ----------------------------------------------------------------------------


@dataclass
class RotationReport:
    rotated: int = 0
    current: int = 0
    unreadable: list[int] = field(default_factory=list)


def credentials_rotate(*, batch_size: int = 500) -> RotationReport:
    """
    Re-encrypt every secret not yet under the newest key (and recompute its digest), one
    transaction per batch of rows in id order. Secrets the newest key already decrypts are left
    alone, so a second pass changes nothing; one no key decrypts is counted by id and skipped.
    """
    report = RotationReport()
    after = 0
    while True:
        with transaction.atomic():
            batch = list(
                Credential.objects.select_for_update()
                .filter(pk__gt=after)
                .order_by("pk")
                .only("pk", "owner_id", "name", "encrypted_secret", "secret_digest")[:batch_size]
            )
            if not batch:
                return report
            _rotate_batch(batch, report)
        after = batch[-1].pk


def _rotate_batch(batch: list[Credential], report: RotationReport) -> None:
    changed: list[Credential] = []
    events: list[CredentialEvent] = []
    for credential in batch:
        is_current = crypto.is_current(credential.encrypted_secret)
        if is_current and credential.secret_digest:
            report.current += 1
            continue
        try:
            secret = credential.reveal_secret()
        except crypto.SecretUnreadable:
            report.unreadable.append(credential.pk)
            continue
        credential.secret_digest = crypto.digest(secret)
        if is_current:
            report.current += 1  # only its digest was missing (stored before digests existed)
        else:
            credential.encrypted_secret = crypto.encrypt(secret)
            events.append(_event(credential, CredentialEvent.Action.ROTATE))
            report.rotated += 1
        changed.append(credential)
    Credential.objects.bulk_update(changed, ["encrypted_secret", "secret_digest"])
    CredentialEvent.objects.bulk_create(events)
