from __future__ import annotations

from rest_framework import serializers

from apps.users.models import ApiKey, Notice, User
from apps.users.validators import time_zone_names


class MeOutput(serializers.ModelSerializer):
    avatar = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "email", "display_name", "avatar", "language", "time_zone", "date_joined"]

    def get_avatar(self, user: User) -> str | None:
        if not user.avatar:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(user.avatar.url) if request else user.avatar.url


class MeInput(serializers.Serializer):
    display_name = serializers.CharField(max_length=100, allow_blank=True, required=False)
    language = serializers.ChoiceField(choices=User.Language.choices, required=False)
    time_zone = serializers.CharField(allow_blank=True, required=False)
    avatar = serializers.ImageField(required=False, allow_null=True)

    def validate_time_zone(self, value: str) -> str:
        if value and value not in time_zone_names():
            raise serializers.ValidationError(f"Unknown time zone {value[:64]!r}.")
        return value


class ApiKeyOutput(serializers.ModelSerializer):
    key_preview = serializers.CharField(source="masked")

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "description",
            "scopes",
            "status",
            "key_preview",
            "created_at",
            "last_used_at",
            "revoked_at",
            "expires_at",
        ]


class ApiKeyCreatedOutput(ApiKeyOutput):
    key = serializers.CharField(help_text="The full key: shown once, store it now.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "key"]


class ApiKeyInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.Scope.choices), allow_empty=False, max_length=3
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class NoticeOutput(serializers.ModelSerializer):
    class Meta:
        model = Notice
        fields = ["id", "kind", "title", "body", "link", "created_at", "read_at"]
        read_only_fields = fields  # output only: every field is always present


class NoticeUnreadCountOutput(serializers.Serializer):
    unread_count = serializers.IntegerField(help_text="How many of the user's notices are unread.")


class NoticesMarkedOutput(serializers.Serializer):
    marked = serializers.IntegerField(
        help_text="How many notices this marked read (those already read keep their time)."
    )
