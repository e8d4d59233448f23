"""The Operators and Members groups exist from the first migrate and keep their permissions current."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

from apps.users import services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def codenames(group_name: str) -> set[str]:
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def test_operators_may_view_and_change_users_and_read_login_records():
    assert {"view_user", "change_user", "view_loginattempt"} <= codenames("Operators")
    assert "delete_user" not in codenames("Operators")
    assert "add_loginattempt" not in codenames("Operators")


def test_members_have_no_admin_permissions():
    assert codenames("Members") == set()


def test_the_sync_is_idempotent_and_recreates_missing_groups():
    Group.objects.filter(name="Members").delete()
    services.default_groups_sync()
    services.default_groups_sync()
    assert Group.objects.filter(name__in=["Operators", "Members"]).count() == 2
    assert Permission.objects.filter(group__name="Operators", codename="view_user").count() == 1


def test_an_operator_in_the_group_can_use_the_admin_user_list(client):
    operator = UserFactory(username="ops", is_staff=True)
    operator.groups.add(Group.objects.get(name="Operators"))
    client.force_login(operator)
    assert client.get("/admin/users/user/").status_code == 200
    assert client.get("/admin/users/loginattempt/").status_code == 200
    assert client.get("/admin/auth/group/").status_code == 403


def test_a_staff_member_outside_the_group_sees_nothing(client):
    client.force_login(UserFactory(username="staff", is_staff=True))
    assert client.get("/admin/users/user/").status_code == 403
