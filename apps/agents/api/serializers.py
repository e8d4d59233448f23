from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.agents.models import Agent, Credential


def refuse_nul_characters(value: Any) -> None:
    """
    JSON input may not hold U+0000 in a key or string: PostgreSQL's jsonb cannot store it (a
    server error otherwise). DRF's CharField checks the same for plain strings.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, str) and "\x00" in item:
            raise serializers.ValidationError("Null characters are not allowed.")


# --- credentials ---------------------------------------------------------------------------------


class CredentialOutput(serializers.ModelSerializer):
    class Meta:
        model = Credential
        fields = ["id", "name", "kind", "secret_hint", "base_url", "header_name", "created_at", "updated_at"]


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
