"""
Stateful, property-based, through the real code paths: node attempts charged by the engine's
`records.node_finished` (one statement on PostgreSQL, the ORM on SQLite), attempts finished twice,
workers that lose their lease while the run resumes elsewhere, top-ups by signed Stripe webhooks,
replays of those webhooks (the same event, or a new event for the same session), Stripe refunds,
and operators' refunds of finished runs. After every step: the balance equals the ledger's sum and
the model's expectation, no idempotency key appears twice, and no node attempt is charged twice.
"""

from __future__ import annotations

import itertools

import pytest
from django.db.models import Count, Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from apps.billing import payments, services
from apps.billing.models import MICRO, CreditAccount, CreditTransaction
from apps.billing.services import Cost
from apps.executions import records
from apps.executions.events import LeaseLost
from apps.executions.models import Execution, NodeExecution
from tests.billing import stripe_server as stripe
from tests.factories import UserFactory, published

pytestmark = pytest.mark.django_db(transaction=True)

WEBHOOK_SECRET = "whsec_property"
PACKS = [(10 * MICRO, 1000), (50 * MICRO, 4500)]


class Ledger(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        CreditTransaction.objects.all().delete()
        CreditAccount.objects.all().delete()
        Execution.objects.all().delete()
        self.user = UserFactory()  # a fresh account per example
        self.version = published(
            self.user, [("in", "input", {"name": "t"}), ("o", "output", {"name": "o"})], [("in", "value", "o", "value")]
        )
        self.workers = itertools.count()
        self.expected = 0
        self.run: Execution | None = None
        self.lease = ""
        self.running: dict[int, tuple[str, int]] = {}  # record -> (lease it started under, its price)
        self.finished: list[int] = []
        self.sessions: list[tuple[dict, bytes, int]] = []  # (session, first event, credits)
        self.refunded_sessions: set[str] = set()

    # --- the engine's charges --------------------------------------------------------------------

    def _new_run(self) -> None:
        self.lease = f"w{next(self.workers)}"
        self.run = Execution.objects.create(
            owner=self.user,
            workflow=self.version.workflow,
            version=self.version,
            status="running",
            lease_owner=self.lease,
            time_budget_seconds=60,
        )

    @rule(price=st.integers(0, 3 * MICRO))
    def start_a_node(self, price: int) -> None:
        if self.run is None:
            self._new_run()
        record_id, _, balance = records.node_started(
            self.run, lease=self.lease, node_id="n", node_type="llm", attempt=1, inputs={}, step=0
        )
        assert balance == self.expected
        self.running[record_id] = (self.lease, price)

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def finish_a_node(self, data: st.DataObject) -> None:
        record_id = data.draw(st.sampled_from(sorted(self.running)))
        lease, price = self.running.pop(record_id)
        try:
            self._finish(record_id, lease, price)
        except LeaseLost:
            # Its worker was reaped: the attempt is left to the resumed run, and pays nothing.
            assert lease != self.lease
            return
        assert lease == self.lease
        self.expected -= price
        self.finished.append(record_id)

    @precondition(lambda self: self.finished)
    @rule(data=st.data())
    def finish_a_node_again(self, data: st.DataObject) -> None:
        record_id = data.draw(st.sampled_from(self.finished))
        # A second end of the same attempt (a redelivered write) charges nothing.
        self._finish(record_id, self.lease, 1_000)

    def _finish(self, record_id: int, lease: str, price: int) -> None:
        usage = {"provider": "scripted", "model": "m", "input_tokens": 1, "output_tokens": 1}
        result = records.Finished(
            status="succeeded", outputs={}, usage=usage, delta={}, duration_ms=1, cost=Cost(price, ("test",))
        )
        records.node_finished(
            self.run, lease=lease, record_id=record_id, node_id="n", node_type="llm", attempt=1, result=result
        )

    @precondition(lambda self: self.run is not None)
    @rule()
    def the_worker_dies_and_the_run_resumes(self) -> None:
        self.lease = f"w{next(self.workers)}"
        Execution.objects.filter(pk=self.run.pk).update(lease_owner=self.lease)

    @precondition(lambda self: self.run is not None)
    @rule()
    def the_run_ends_and_an_operator_refunds_it(self) -> None:
        Execution.objects.filter(pk=self.run.pk).update(status="succeeded", lease_owner="")
        self.run.refresh_from_db()
        moved = CreditTransaction.objects.filter(execution=self.run).aggregate(total=Sum("amount"))["total"] or 0
        try:
            services.run_refund(execution=self.run, actor=self.user)
        except services.RefundRefused:
            assert moved == 0
        else:
            assert moved < 0
            self.expected -= moved
        # A second refund of the same run gives nothing.
        with pytest.raises(services.RefundRefused):
            services.run_refund(execution=self.run, actor=self.user)
        self.run, self.running = None, {}

    # --- payments ------------------------------------------------------------------------------

    def _deliver(self, body: bytes) -> None:
        payments.webhook_handle(payload=body, signature=stripe.sign(body, WEBHOOK_SECRET))

    @rule(pack=st.sampled_from(PACKS))
    def top_up(self, pack: tuple[int, int]) -> None:
        credits_micro, amount = pack
        session = stripe.paid_session(user_id=self.user.pk, pack="p", credits_micro=credits_micro, amount=amount)
        body = stripe.event("checkout.session.completed", session)
        self._deliver(body)
        self.expected += credits_micro
        self.sessions.append((session, body, credits_micro))

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), new_event=st.booleans())
    def replay_a_webhook(self, data: st.DataObject, new_event: bool) -> None:
        session, body, _ = data.draw(st.sampled_from(self.sessions))
        # Stripe delivers the same event again, or another event carries the same session.
        self._deliver(stripe.event("checkout.session.completed", session) if new_event else body)

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def stripe_refunds_a_payment_in_full(self, data: st.DataObject) -> None:
        session, _, credits_micro = data.draw(st.sampled_from(self.sessions))
        refund = stripe.refund(session["amount_total"])
        body = stripe.event(
            "charge.refunded", stripe.charge(session["payment_intent"], session["amount_total"], [refund])
        )
        self._deliver(body)
        self._deliver(body)  # and once more: the refund is taken once
        if session["id"] not in self.refunded_sessions:
            self.refunded_sessions.add(session["id"])
            self.expected -= credits_micro

    # --- what must always hold -------------------------------------------------------------------

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

    @invariant()
    def every_attempt_charged_at_most_once_and_runs_sum_their_charges(self) -> None:
        charged = CreditTransaction.objects.filter(kind="usage")
        assert not charged.values("node_execution").annotate(n=Count("pk")).filter(n__gt=1).exists()
        for row in charged.select_related("node_execution"):
            assert row.amount == -row.node_execution.cost
            assert row.idempotency_key == f"node:{row.node_execution_id}"
        for run in Execution.objects.all():
            spent = charged.filter(execution=run).aggregate(total=Sum("amount"))["total"] or 0
            assert run.cost == -spent
        assert not NodeExecution.objects.filter(status="running").exclude(cost=0).exists()


def test_random_interleavings_keep_the_ledger_exact(settings) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_property"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    run_state_machine_as_test(Ledger, settings=EXAMPLES)


EXAMPLES = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
