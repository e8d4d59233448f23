"""
Charging: each finished node pays for its usage in the transaction that records it, under the key
`node:<node execution id>`; a run out of credits fails at its next node and keeps what it made.
"""

from __future__ import annotations

import pytest
from django.db.models import Sum

from apps.billing import services
from apps.billing.models import MICRO, CreditTransaction, ModelPrice, UnitPrice
from apps.billing.services import Cost
from apps.executions import engine, records
from apps.executions import services as runs
from apps.executions.events import LeaseLost
from apps.executions.models import Execution, NodeExecution
from tests.factories import UserFactory, published, scripted

pytestmark = pytest.mark.django_db

IN = ("in", "input", {"name": "text"})


def two_llm_flow(owner, **parameters):
    return published(
        owner,
        [
            IN,
            ("first", "llm", {**scripted("one two three", **parameters), "prompt": "say {{ x }}"}),
            ("second", "llm", {**scripted("four five", **parameters), "prompt": "then {{ x }}"}),
            ("out", "output", {"name": "result"}),
        ],
        [("in", "value", "first", "x"), ("first", "text", "second", "x"), ("second", "text", "out", "value")],
    )


def funded(credits: int = 10, username: str = "payer"):
    user = UserFactory(username=username)
    services.ledger_post(user=user, kind="grant", amount=credits * MICRO, idempotency_key=f"test-grant:{user.pk}")
    return user


def run(version, owner, inputs=None):
    execution = runs.execution_run(version=version, inputs=inputs or {"text": "go"}, owner=owner)
    engine.run_execution(execution.pk)
    execution.refresh_from_db()
    return execution


def price_scripted(per_million_in: int, per_million_out: int) -> None:
    ModelPrice.objects.filter(provider="scripted").delete()
    ModelPrice.objects.create(
        provider="scripted", model="scripted-1", input_per_million=per_million_in, output_per_million=per_million_out
    )


def test_each_charged_node_has_one_ledger_row_and_the_run_sums_them():
    owner = funded()
    price_scripted(per_million_in=3 * MICRO, per_million_out=7 * MICRO)
    execution = run(two_llm_flow(owner), owner)
    assert execution.status == "succeeded"

    charged = {}
    for node in execution.node_executions.filter(node_type="llm"):
        usage = node.usage
        expected = -(-usage["input_tokens"] * 3 * MICRO // 1_000_000) - (
            -usage["output_tokens"] * 7 * MICRO // 1_000_000
        )
        assert usage["input_tokens"] > 0
        assert usage["output_tokens"] > 0
        assert node.cost == expected > 0
        row = CreditTransaction.objects.get(idempotency_key=f"node:{node.pk}")
        assert (row.kind, row.amount, row.user_id) == ("usage", -expected, owner.pk)
        assert (row.execution_id, row.node_execution_id, row.fallback_price) == (execution.pk, node.pk, False)
        assert f"node {node.node_id}" in row.description
        assert "scripted/scripted-1" in row.description
        charged[node.node_id] = expected
    # Input, output and template nodes are free: no ledger rows for them.
    assert CreditTransaction.objects.filter(kind="usage").count() == 2
    assert execution.cost == sum(charged.values())
    assert services.balance_of(owner) == 10 * MICRO - execution.cost
    total = CreditTransaction.objects.filter(user=owner).aggregate(total=Sum("amount"))["total"]
    assert total == services.balance_of(owner)
    last = CreditTransaction.objects.filter(user=owner).first()
    assert last.balance_after == services.balance_of(owner)
    # The completed events say what each node cost, in credits.
    completed = execution.events.filter(type="node.completed", node_id="second").get()
    assert completed.payload["cost"] == f"0.{charged['second']:06d}".rstrip("0")


def test_a_per_call_price_charges_nodes_that_have_one():
    owner = funded()
    UnitPrice.objects.update_or_create(subject="node", name="template", defaults={"per_call": 2_500})
    version = published(
        owner,
        [IN, ("t", "template", {"template": "{{ x }}!"}), ("out", "output", {"name": "r"})],
        [("in", "value", "t", "x"), ("t", "text", "out", "value")],
    )
    execution = run(version, owner)
    assert execution.status == "succeeded"
    node = execution.node_executions.get(node_id="t")
    assert node.cost == 2_500 == execution.cost
    assert CreditTransaction.objects.get(idempotency_key=f"node:{node.pk}").amount == -2_500


def test_an_unpriced_model_is_charged_the_fallback_and_flagged(settings):
    settings.BILLING_FALLBACK_PER_MILLION = 40
    owner = funded()
    ModelPrice.objects.filter(provider="scripted").delete()
    execution = run(two_llm_flow(owner), owner)
    assert execution.status == "succeeded"
    rows = CreditTransaction.objects.filter(kind="usage")
    assert rows.count() == 2
    assert all(row.fallback_price for row in rows)
    assert all("fallback price" in row.description for row in rows)
    first = execution.node_executions.get(node_id="first")
    tokens = first.usage["input_tokens"] + first.usage["output_tokens"]
    assert first.cost == tokens * 40 > 0  # 40 credits per million = 40 micro-credits a token


def test_a_run_out_of_credits_fails_at_its_next_node_and_keeps_what_it_made():
    owner = funded(credits=1)
    # A credit per token: the first node's few tokens take the whole balance and more.
    price_scripted(per_million_in=MICRO * MICRO, per_million_out=MICRO * MICRO)
    execution = run(two_llm_flow(owner), owner)

    assert (execution.status, execution.error_code) == ("failed", "insufficient_credits")
    first = execution.node_executions.get(node_id="first")
    assert (first.status, first.outputs) == ("succeeded", {"text": "one two three"})
    second = execution.node_executions.get(node_id="second")
    assert (second.status, second.error_code, second.cost) == ("failed", "insufficient_credits", 0)
    assert not execution.node_executions.filter(node_id="out").exists()
    # The work done was paid in full, into debt; nothing was charged after it.
    assert services.balance_of(owner) == MICRO - first.cost < 0
    assert CreditTransaction.objects.filter(kind="usage").count() == 1
    # A new run is refused at the door while the balance is below a run's minimum.
    with pytest.raises(runs.ExecutionRefused) as refused:
        runs.execution_run(version=execution.version, inputs={"text": "again"}, owner=owner)
    assert refused.value.code == "insufficient_credits"


def test_a_finished_run_delivered_again_is_not_charged_again():
    owner = funded()
    price_scripted(per_million_in=MICRO, per_million_out=MICRO)
    execution = run(two_llm_flow(owner), owner)
    before = (services.balance_of(owner), CreditTransaction.objects.count())
    assert engine.run_execution(execution.pk) is None  # a redelivered message claims nothing
    assert (services.balance_of(owner), CreditTransaction.objects.count()) == before


def test_failed_attempts_are_not_charged():
    owner = funded()
    price_scripted(per_million_in=MICRO, per_million_out=MICRO)
    version = published(
        owner,
        [
            IN,
            # Streams a word every half second with 0.2 s to live: it times out having used tokens.
            (
                "bad",
                "llm",
                {**scripted("a b c", chunk_size=1, delay_ms=500), "prompt": "{{ x }}", "timeout_seconds": 0.2},
            ),
            ("out", "output", {"name": "r"}),
        ],
        [("in", "value", "bad", "x"), ("bad", "text", "out", "value")],
    )
    execution = run(version, owner)
    assert execution.status == "timed_out"
    assert NodeExecution.objects.filter(execution=execution, node_id="bad").exclude(cost=0).count() == 0
    assert not CreditTransaction.objects.filter(kind="usage").exists()


def test_operators_see_costs_and_refund_a_finished_run_once(client):
    operator = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(operator)
    owner = funded()
    price_scripted(per_million_in=MICRO, per_million_out=MICRO)
    execution = run(two_llm_flow(owner), owner)
    charged = execution.cost
    assert charged > 0
    page = client.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
    assert f"0.{charged:06d}".rstrip("0") in page

    for _ in range(2):  # the second refund finds nothing left to give back
        response = client.post(
            "/admin/executions/execution/", {"action": "refund", "_selected_action": [str(execution.pk)]}
        )
        assert response.status_code == 302
    refund = CreditTransaction.objects.get(kind="refund")
    assert (refund.amount, refund.actor_id, refund.execution_id) == (charged, operator.pk, execution.pk)
    assert services.balance_of(owner) == 10 * MICRO
    # The ledger shows the fallback-price filter operators look for.
    assert "fallback price" in client.get("/admin/billing/credittransaction/").content.decode().lower()


def test_a_run_still_going_is_not_refunded():
    owner = funded()
    version = two_llm_flow(owner)
    queued = runs.execution_run(version=version, inputs={"text": "go"}, owner=owner)
    with pytest.raises(services.RefundRefused, match="once it has finished"):
        services.run_refund(execution=queued, actor=owner)
    assert not CreditTransaction.objects.filter(kind="refund").exists()


def test_the_api_shows_what_a_run_and_each_node_cost(client):
    owner = funded()
    price_scripted(per_million_in=MICRO, per_million_out=MICRO)
    execution = run(two_llm_flow(owner), owner)
    client.force_login(owner)
    body = client.get(f"/api/v1/executions/{execution.pk}/").json()
    nodes = {node["node_id"]: node["cost"] for node in body["nodes"]}
    by_id = {node.node_id: node.cost for node in execution.node_executions.all()}
    assert nodes == {node_id: f"0.{cost:06d}".rstrip("0").rstrip(".") for node_id, cost in by_id.items()}
    assert nodes["in"] == "0"
    assert body["cost"] == f"0.{execution.cost:06d}".rstrip("0")
    listed = client.get("/api/v1/executions/").json()["results"]
    assert [row["cost"] for row in listed] == [body["cost"]]


def leased_node(owner):
    """A claimed run of `owner` with one running node attempt: (execution, record id)."""
    execution = runs.execution_run(version=two_llm_flow(owner), inputs={"text": "go"}, owner=owner)
    execution = runs.execution_claim(execution_id=execution.pk, worker_id="w1", sink=[])
    record_id, _, balance = records.node_started(
        execution, lease="w1", node_id="first", node_type="llm", attempt=1, inputs={}, step=0
    )
    assert balance == services.balance_of(owner)
    return execution, record_id


def finish(execution, record_id: int, cost: int, lease: str = "w1") -> None:
    """End the attempt as the engine does, priced at `cost` micro-credits."""
    usage = {"provider": "scripted", "model": "scripted-1", "input_tokens": 3, "output_tokens": 4}
    result = records.Finished(
        status="succeeded", outputs={"text": "x"}, usage=usage, delta={}, duration_ms=5, cost=Cost(cost, ("t",))
    )
    records.node_finished(
        execution, lease=lease, record_id=record_id, node_id="first", node_type="llm", attempt=1, result=result
    )


def test_finishing_an_attempt_twice_charges_it_once():
    owner = funded()
    execution, record_id = leased_node(owner)
    for _ in range(2):
        finish(execution, record_id, 700)
    execution.refresh_from_db()
    assert execution.cost == 700
    assert NodeExecution.objects.get(pk=record_id).cost == 700
    assert list(CreditTransaction.objects.filter(kind="usage").values_list("idempotency_key", "amount")) == [
        (f"node:{record_id}", -700)
    ]
    assert services.balance_of(owner) == 10 * MICRO - 700


def test_a_worker_that_lost_its_lease_charges_nothing():
    owner = funded()
    execution, record_id = leased_node(owner)
    Execution.objects.filter(pk=execution.pk).update(lease_owner="w2")  # the reaper gave the run away
    with pytest.raises(LeaseLost):
        finish(execution, record_id, 700)
    assert NodeExecution.objects.get(pk=record_id).status == "running"
    assert (Execution.objects.get(pk=execution.pk).cost, services.balance_of(owner)) == (0, 10 * MICRO)
    assert not CreditTransaction.objects.filter(kind="usage").exists()


def test_the_usage_reports_add_up_the_engines_charges(client):
    owner = funded()
    price_scripted(per_million_in=3 * MICRO, per_million_out=5 * MICRO)
    executions = [run(two_llm_flow(owner), owner) for _ in range(2)]
    nodes = NodeExecution.objects.filter(execution__in=executions, node_type="llm")
    client.force_login(owner)

    usage = client.get("/api/v1/billing/usage/").json()
    spent = sum(execution.cost for execution in executions)
    assert usage["runs"] == 2
    assert usage["credits"] == f"0.{spent:06d}".rstrip("0")
    assert usage["input_tokens"] == sum(node.usage["input_tokens"] for node in nodes)
    assert usage["output_tokens"] == sum(node.usage["output_tokens"] for node in nodes)
    assert [(row["provider"], row["model"]) for row in usage["by_model"]] == [("scripted", "scripted-1")]

    workflows = client.get("/api/v1/billing/agent-breakdown/").json()["workflows"]
    assert sorted((row["id"], row["runs"]) for row in workflows) == sorted(
        (execution.workflow_id, 1) for execution in executions
    )
    days = client.get("/api/v1/billing/usage/history/").json()["days"]
    assert sum(day["runs"] for day in days) == 2
