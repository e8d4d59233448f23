from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.agents.models import Agent, Credential
from apps.agents.validators import holds_nul


def refuse_nul_characters(value: Any) -> None:
    """JSON input may not hold U+0000; DRF's CharField checks the same for plain strings."""
    if holds_nul(value):
        raise serializers.ValidationError("Null characters are not allowed.")


# --- credentials ---------------------------------------------------------------------------------

MAX_SYNC_ITEMS = 500


class CredentialOutput(serializers.ModelSerializer):
    """A credential as its owner sees it: never the secret, only `secret_hint` (its last characters)."""

    # Annotations of services.credentials_listed; absent (null) on an object fresh from a service.
    last_used_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When a run last resolved it (null: never)."
    )
    last_used_execution = serializers.UUIDField(read_only=True, allow_null=True, help_text="The run that did.")
    last_used_node = serializers.CharField(read_only=True, allow_null=True, help_text="Its node.")

    class Meta:
        model = Credential
        fields = [
            "id",
            "name",
            "kind",
            "client_id",
            "secret_hint",
            "base_url",
            "header_name",
            "revoked_at",
            "last_used_at",
            "last_used_execution",
            "last_used_node",
            "created_at",
            "updated_at",
        ]


class CredentialInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Credential.Kind.choices)
    secret = serializers.CharField(
        write_only=True,
        allow_blank=True,
        max_length=10_000,
        style={"input_type": "password"},
        help_text="Stored encrypted and never shown again; blank only for Ollama.",
    )
    base_url = serializers.URLField(max_length=200, allow_blank=True, required=False, default="")
    header_name = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")


class CredentialSyncItem(CredentialInput):
    id = serializers.CharField(
        max_length=200, help_text="Your own identifier for this credential: the sync matches on it (unique per user)."
    )


class CredentialSyncInput(serializers.Serializer):
    # A ListField, not many=True: its errors are keyed `credentials.<index>.<field>` and a
    # wrong type is an error on `credentials` itself (a list serializer nests non_field_errors).
    credentials = serializers.ListField(child=CredentialSyncItem(), max_length=MAX_SYNC_ITEMS)
    prune = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also delete your synced credentials (those with a client id) that the set leaves out.",
    )


class CredentialSyncItemOutput(serializers.Serializer):
    id = serializers.CharField(help_text="The client's identifier.")
    outcome = serializers.ChoiceField(choices=["created", "updated", "unchanged"])
    credential = CredentialOutput()


class CredentialSyncDeletedOutput(serializers.Serializer):
    id = serializers.CharField(help_text="The client's identifier.")
    credential = serializers.IntegerField(help_text="The deleted credential's id.")


class CredentialSyncCounts(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    deleted = serializers.IntegerField()


class CredentialSyncOutput(serializers.Serializer):
    credentials = CredentialSyncItemOutput(many=True)
    deleted = CredentialSyncDeletedOutput(many=True)
    counts = CredentialSyncCounts()


class CredentialRevokeAllOutput(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many credentials this call revoked.")


# --- agents --------------------------------------------------------------------------------------


class AgentOutput(serializers.ModelSerializer):
    credential = serializers.IntegerField(source="credential_id", allow_null=True, read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "description",
            "system_prompt",
            "provider",
            "model",
            "parameters",
            "credential",
            "tools",
            "max_iterations",
            "created_at",
            "updated_at",
        ]


class AgentInput(serializers.Serializer):
    """
    PUT replaces (an absent optional field returns to its default); PATCH changes what it names.
    `credential` is looked up among the requesting user's credentials only.
    """

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    system_prompt = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    provider = serializers.CharField(max_length=32, required=False, default=Agent._meta.get_field("provider").default)
    model = serializers.CharField(max_length=200)
    parameters = serializers.DictField(required=False, default=dict, validators=[refuse_nul_characters])
    credential = serializers.PrimaryKeyRelatedField(
        queryset=Credential.objects.none(),
        pk_field=serializers.IntegerField(),
        allow_null=True,
        required=False,
        default=None,
        error_messages={"does_not_exist": "No credential {pk_value} of yours exists."},
    )
    tools = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    max_iterations = serializers.IntegerField(required=False, default=Agent._meta.get_field("max_iterations").default)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        user = request.user if request is not None else None
        # Another user's credential is "does not exist", exactly like an id nobody has.
        self.fields["credential"].queryset = Credential.objects.visible_to(user)

    def validate_tools(self, value: list[str]) -> list[str]:
        # Catalogue names (http:<id>, mcp:<id>:<tool>) must be the requesting user's entries.
        from apps.agents.mcp import check_agent_tools

        request = self.context.get("request")
        owner_id = request.user.pk if request is not None else None
        if problems := check_agent_tools(owner_id=owner_id, names=value):
            raise serializers.ValidationError(problems)
        return value
