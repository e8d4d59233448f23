"""
Stateful, property-based: random interleavings of charges, their redeliveries, top-ups, replayed
top-ups and refunds. After every step the balance equals the ledger's sum, every key appears once,
and no charge was applied twice (run on PostgreSQL in CI as well).
"""

from __future__ import annotations

import pytest
from django.db.models import Count, Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from apps.billing import services
from apps.billing.models import CreditAccount, CreditTransaction
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


class Ledger(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        CreditTransaction.objects.all().delete()
        CreditAccount.objects.all().delete()
        self.user = UserFactory()  # a fresh account per example
        self.expected = 0
        self.applied: dict[str, int] = {}

    def _post(self, kind: str, amount: int, key: str) -> None:
        _, created = services.ledger_post(user=self.user, kind=kind, amount=amount, idempotency_key=key)
        assert created == (key not in self.applied)
        if created:
            self.applied[key] = amount
            self.expected += amount

    @rule(node=st.integers(1, 30), cost=st.integers(1, 5_000_000))
    def charge_a_node(self, node: int, cost: int) -> None:
        # A redelivered or resumed run charges the same node again: the first amount stands.
        self._post("usage", -cost, f"node:{node}")

    @rule(event=st.integers(1, 10), amount=st.integers(1, 50_000_000))
    def top_up(self, event: int, amount: int) -> None:
        # A webhook delivered again (same event id) must credit once.
        self._post("topup", amount, f"stripe:{event}")

    @rule(node=st.integers(1, 30))
    def refund_a_node(self, node: int) -> None:
        charged = self.applied.get(f"node:{node}")
        if charged is not None:
            self._post("refund", -charged, f"refund:node:{node}")

    @invariant()
    def balance_is_the_ledger_sum(self) -> None:
        if not hasattr(self, "user"):
            return
        total = CreditTransaction.objects.filter(user=self.user).aggregate(total=Sum("amount"))["total"] or 0
        assert services.balance_of(self.user) == total == self.expected
        last = CreditTransaction.objects.filter(user=self.user).order_by("-pk").first()
        assert last is None or last.balance_after == self.expected

    @invariant()
    def every_key_once(self) -> None:
        repeated = CreditTransaction.objects.values("idempotency_key").annotate(n=Count("pk")).filter(n__gt=1)
        assert not repeated.exists()


def test_random_interleavings_keep_the_ledger_exact():
    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )
