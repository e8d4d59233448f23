"""The ledger: balances change only with a row, never twice for one key, always equal to the sum."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from apps.billing import services
from apps.billing.models import MICRO, CreditAccount, CreditTransaction, credits
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def ledger_sum(user) -> int:
    return CreditTransaction.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or 0


def test_a_movement_is_one_row_and_the_balance_after_it():
    user = UserFactory()
    row, created = services.ledger_post(user=user, kind="grant", amount=5 * MICRO, idempotency_key="grant:1")
    assert created
    assert (row.balance_after, services.balance_of(user)) == (5 * MICRO, 5 * MICRO)
    spent, _ = services.ledger_post(user=user, kind="usage", amount=-1_500_000, idempotency_key="node:1")
    assert spent.balance_after == 3_500_000
    assert services.balance_of(user) == ledger_sum(user) == 3_500_000


def test_the_same_key_never_moves_credits_twice():
    user = UserFactory()
    first, created = services.ledger_post(user=user, kind="usage", amount=-700, idempotency_key="node:9")
    again, created_again = services.ledger_post(user=user, kind="usage", amount=-700, idempotency_key="node:9")
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert services.balance_of(user) == -700
    assert CreditTransaction.objects.count() == 1


def test_a_key_used_for_another_account_is_refused():
    services.ledger_post(user=UserFactory(), kind="grant", amount=MICRO, idempotency_key="shared")
    other = UserFactory()
    with pytest.raises(services.LedgerRefused, match="another account"):
        services.ledger_post(user=other, kind="grant", amount=MICRO, idempotency_key="shared")
    assert services.balance_of(other) == 0


@pytest.mark.parametrize("amount", [0, 1.5, True, 10**18])
def test_zero_fractional_and_absurd_amounts_are_refused_and_change_nothing(amount):
    user = UserFactory()
    with pytest.raises(services.LedgerRefused):
        services.ledger_post(user=user, kind="grant", amount=amount, idempotency_key="bad")
    assert not CreditTransaction.objects.exists()
    assert not CreditAccount.objects.filter(user=user, balance__gt=0).exists()


def test_credits_are_shown_exactly():
    assert [credits(value) for value in (0, 1, 1_500_000, -2_000_000, 123)] == [
        "0",
        "0.000001",
        "1.5",
        "-2",
        "0.000123",
    ]
