"""Signal receivers, connected in UsersConfig.ready(); each hands over to a service."""

from typing import Any

from apps.users import services


def user_created_joins_members(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    # A signal rather than a call in each sign-up path: users are also created by
    # the admin, createsuperuser and social sign-in, and all of them must join.
    if created and not raw:
        services.user_join_members(user=instance)


def default_groups_sync(sender: Any, **kwargs: Any) -> None:
    services.default_groups_sync()
