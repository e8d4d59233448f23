"""`/api/v1/billing/`: balance, the ledger and the plan, each the user's own, amounts exact."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from apps.billing import services
from apps.billing.models import MICRO, CreditTransaction
from apps.users.services import api_key_create
from tests.api.conftest import ApiClient, error
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return UserFactory(username="payer")


@pytest.fixture
def api(user):
    return ApiClient(api_key_create(owner=user, name="k", scopes=["read"])[1])


def movements(user, count: int) -> None:
    for n in range(count):
        services.ledger_post(user=user, kind="grant", amount=MICRO + n, idempotency_key=f"g:{user.pk}:{n}")
        services.ledger_post(user=user, kind="usage", amount=-(n + 1) * 1000, idempotency_key=f"u:{user.pk}:{n}")


def test_the_balance_is_the_ledger_sum_in_exact_credits(api, user):
    movements(user, 3)
    body = api.get("/api/v1/billing/balance/").json()
    total = CreditTransaction.objects.filter(user=user).aggregate(total=Sum("amount"))["total"]
    # grants 1 + 0.000001·(0+1+2) = 3.000003; usage 0.001+0.002+0.003 = 0.006
    assert body == {"balance": "2.994003", "balance_micro_credits": total}


def test_transactions_are_the_users_own_newest_first_filtered_and_limited(api, user):
    movements(user, 3)
    movements(UserFactory(username="other"), 2)
    rows = api.get("/api/v1/billing/transactions/").json()["results"]
    assert len(rows) == 6
    assert rows[0]["idempotency_key"] == f"u:{user.pk}:2"
    assert rows[0]["amount"] == "-0.003"
    usage = api.get("/api/v1/billing/transactions/", {"kind": "usage", "limit": 2}).json()
    assert [row["kind"] for row in usage["results"]] == ["usage", "usage"]
    assert usage["next"] is not None
    assert api.get("/api/v1/billing/transactions/", {"limit": 1001}).status_code == 200  # capped at 1000
    bad = api.get("/api/v1/billing/transactions/", {"kind": "gift"})
    assert (bad.status_code, list(error(bad)["fields"])) == (400, ["kind"])


def test_the_ledger_list_costs_the_same_queries_for_few_and_many_rows(api, user):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get("/api/v1/billing/transactions/").status_code == 200
        return len(queries)

    movements(user, 1)
    count()  # the key's first use of the minute also records `last_used_at`
    few = count()
    movements(user, 20)
    assert count() == few <= 5


def test_the_plan_shows_its_limits_and_what_is_used(api, user):
    body = api.get("/api/v1/billing/plan/").json()
    assert body["name"] == "Free"
    assert body["concurrent_runs"] == {"limit": 20, "used": 0}
    assert body["runs_today"]["used"] == 0


def test_billing_needs_credentials(client):
    assert client.get("/api/v1/billing/balance/").status_code == 401


def test_date_times_outside_the_calendar_are_400_not_a_server_error(api):
    # Found by schemathesis on PostgreSQL: an offset beyond what it stores.
    response = api.get("/api/v1/billing/transactions/", {"created_after": "4287-02-04T04:55:39+17:17"})
    assert (response.status_code, list(error(response)["fields"])) == (400, ["created_after"])
