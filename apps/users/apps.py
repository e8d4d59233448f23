from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


class UsersConfig(AppConfig):
    """Accounts, profiles, login records and the default groups: the ground floor."""

    name = "apps.users"
    label = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        from apps.users import signals

        post_save.connect(signals.user_created_joins_members, sender=self.get_model("User"))
        # Permissions are created per app after migrate; grant them to the default
        # groups after every app's pass, so models added later are covered too.
        post_migrate.connect(signals.default_groups_sync, dispatch_uid="users.default_groups_sync")
