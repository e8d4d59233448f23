"""Operators: the ledger and balances read-only; grants are new ledger rows naming the operator."""

from __future__ import annotations

import pytest

from apps.billing import services
from apps.billing.models import MICRO, CreditAccount, CreditTransaction
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def account():
    user = UserFactory(username="alice")
    services.ledger_post(user=user, kind="grant", amount=MICRO, idempotency_key="welcome:alice")
    return CreditAccount.objects.get(user=user)


def grant(client, account, amount: str, reason: str = "goodwill"):
    return client.post(
        "/admin/billing/creditaccount/",
        {"action": "grant_credits", "_selected_action": [account.pk], "apply": "1", "amount": amount, "reason": reason},
        follow=True,
    )


def test_an_operator_grants_credits_as_a_ledger_row_naming_them(client, operator, account):
    response = grant(client, account, "2.5")
    assert "Granted 2.5 credits to 1 account(s)." in response.content.decode()
    row = CreditTransaction.objects.get(kind="grant", actor=operator)
    assert (row.amount, row.balance_after) == (2_500_000, 3_500_000)
    assert "goodwill" in row.description
    assert services.balance_of(account.user) == 3_500_000


@pytest.mark.parametrize("amount", ["-5", "0", "abc", "10000000000"])
def test_negative_zero_malformed_and_absurd_grants_are_refused(client, operator, account, amount):
    response = grant(client, account, amount)
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not CreditTransaction.objects.filter(kind="grant", actor=operator).exists()
    assert services.balance_of(account.user) == MICRO


def test_the_ledger_and_balances_cannot_be_edited(client, operator, account):
    row = CreditTransaction.objects.get()
    assert client.get("/admin/billing/credittransaction/").status_code == 200
    assert client.get("/admin/billing/credittransaction/add/").status_code == 403
    assert client.post(f"/admin/billing/credittransaction/{row.pk}/change/", {"amount": 9}).status_code == 403
    assert client.post(f"/admin/billing/credittransaction/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(f"/admin/billing/creditaccount/{account.pk}/change/", {"balance": 999 * MICRO})
    assert services.balance_of(account.user) == MICRO
    assert client.post(f"/admin/billing/creditaccount/{account.pk}/delete/", {"post": "yes"}).status_code == 403
