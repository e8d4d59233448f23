"""Plans: a newcomer can run at once; starts are admitted by credits and limits decided in the database."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.billing import services
from apps.billing.models import MICRO, CreditTransaction, Plan, Subscription
from apps.executions import services as runs
from apps.executions.models import Execution
from apps.users.services import api_key_create
from tests.api.conftest import ApiClient, error
from tests.factories import UserFactory, published
from tests.support.services import closing_connections

pytestmark = pytest.mark.django_db

FLOW = ([("in", "input", {"name": "t"}), ("o", "output", {"name": "o"})], [("in", "value", "o", "value")])


def plan(**limits) -> Plan:
    values = {"monthly_grant": 5 * MICRO, "max_concurrent_runs": 10, "max_runs_per_day": 100, **limits}
    return Plan.objects.create(name=f"plan-{Plan.objects.count()}", **values)


def test_a_new_user_joins_the_default_plan_with_its_grant_once():
    Plan.objects.filter(is_default=True).update(monthly_grant=7 * MICRO)
    user = UserFactory()
    subscription = Subscription.objects.get(user=user)
    assert subscription.plan.is_default
    assert services.balance_of(user) == 7 * MICRO
    services.subscription_start(user=user)  # again: nothing more
    assert CreditTransaction.objects.filter(user=user, kind="grant").count() == 1


def test_each_period_is_granted_once_however_often_renewal_runs():
    user = UserFactory()
    Subscription.objects.filter(user=user).update(plan=plan(monthly_grant=3 * MICRO))
    later = timezone.now() + timedelta(days=31)
    assert services.subscriptions_renew(now=later) == 1
    assert services.subscriptions_renew(now=later) == 0
    assert services.balance_of(user) == 3 * MICRO
    subscription = Subscription.objects.get(user=user)
    assert subscription.period_start <= later < subscription.period_end


def start_through_the_api(user, version):
    _, key = api_key_create(owner=user, name="k", scopes=["execute"])
    return ApiClient(key).post(f"/api/v1/workflows/{version.workflow_id}/run/", {"inputs": {"t": "x"}})


def test_a_start_without_enough_credits_is_402_and_the_run_is_not_created():
    user = UserFactory()
    version = published(user, *FLOW)
    response = start_through_the_api(user, version)
    assert (response.status_code, error(response)["code"]) == (402, "insufficient_credits")
    assert "below a run's minimum" in error(response)["message"]
    assert not Execution.objects.filter(status="queued").exists()


def test_the_concurrency_and_daily_limits_are_429_naming_them():
    user = UserFactory()
    services.ledger_post(user=user, kind="grant", amount=MICRO, idempotency_key="g")
    Subscription.objects.filter(user=user).update(plan=plan(max_concurrent_runs=2, max_runs_per_day=3))
    version = published(user, *FLOW)
    assert [start_through_the_api(user, version).status_code for _ in range(2)] == [202, 202]
    busy = start_through_the_api(user, version)
    assert (busy.status_code, error(busy)["code"]) == (429, "concurrency_limit")
    Execution.objects.filter(status="queued").update(status="succeeded")
    assert start_through_the_api(user, version).status_code == 202
    Execution.objects.filter(status="queued").update(status="succeeded")
    tired = start_through_the_api(user, version)
    assert (tired.status_code, error(tired)["code"]) == (429, "daily_limit")
    assert Execution.objects.filter(queued_at__isnull=False).count() == 3


@pytest.mark.django_db(transaction=True)
def test_fifty_simultaneous_starts_admit_exactly_the_plans_ten():
    user = UserFactory()
    services.ledger_post(user=user, kind="grant", amount=MICRO, idempotency_key="g")
    Subscription.objects.filter(user=user).update(plan=plan(max_concurrent_runs=10))
    version = published(user, *FLOW)
    pending = [runs.execution_create(version=version, inputs={"t": "x"}, owner=user) for _ in range(50)]
    outcomes: list[str] = []
    gate = threading.Barrier(len(pending))

    def start(execution) -> None:
        gate.wait()
        try:
            runs.execution_start(execution=execution)
            outcomes.append("started")
        except runs.ExecutionRefused as refused:
            outcomes.append(refused.code)

    threads = [threading.Thread(target=closing_connections(start, execution)) for execution in pending]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["concurrency_limit"] * 40 + ["started"] * 10, connection.vendor
    assert Execution.objects.filter(status="queued").count() == 10


def test_a_runs_time_budget_is_the_plans_max_run_time_when_shorter(settings):
    settings.EXECUTION_TIME_BUDGET_SECONDS = 3600
    user = UserFactory()
    Subscription.objects.filter(user=user).update(plan=plan(max_run_seconds=90))
    version = published(user, *FLOW)
    assert runs.execution_create(version=version, inputs={"t": "x"}, owner=user).time_budget_seconds == 90
    Plan.objects.filter(subscriptions__user=user).update(max_run_seconds=7200)
    assert runs.execution_create(version=version, inputs={"t": "x"}, owner=user).time_budget_seconds == 3600


def test_operators_see_plans_and_subscriptions(client):
    operator = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(operator)
    assert "Free" in client.get("/admin/billing/plan/").content.decode()
    assert "root" in client.get("/admin/billing/subscription/").content.decode()
    assert client.get("/admin/billing/subscription/add/").status_code == 403
