"""
The billing page: balance and plan, usage charts over 7/30/90 days (by day, agent, model,
workflow), the transactions (filtered, paginated, newest first), and buying credits through a
(loopback) Stripe Checkout.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.agents.models import Agent
from apps.billing import services as billing
from apps.billing.models import MICRO, CreditTransaction, Plan, credits
from apps.executions.models import Execution, NodeExecution
from tests.billing import stripe_server as stripe
from tests.factories import UserFactory, published
from tests.pages.conftest import run_to_the_end
from tests.pages.test_dashboard import text

pytestmark = pytest.mark.django_db

URL = "/billing/"
CHECKOUT = "/billing/checkout/"
SECRET_KEY = "sk_test_51BillingPageLoopbackKey"
_keys = itertools.count(1)
GPT = {"provider": "openai", "model": "gpt-4o-mini"}
CLAUDE = {"provider": "anthropic", "model": "claude-haiku"}


@pytest.fixture
def stripe_loopback(settings):
    with stripe.StripeServer(api_key=SECRET_KEY) as loopback:
        settings.STRIPE_SECRET_KEY = SECRET_KEY
        settings.STRIPE_WEBHOOK_SECRET = "whsec_BillingPageLoopback"
        settings.STRIPE_API_BASE = loopback.url
        yield loopback


@pytest.fixture
def no_payments(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""


@pytest.fixture
def flow(member):
    return published(member, [("in", "input", {"name": "text"})], [], name="Nightly digest")


def charge(run: Execution, micro: int, *, days_ago: int = 0, **usage) -> CreditTransaction:
    """A node run with `usage` and its usage ledger row, `days_ago` days back."""
    at = timezone.now() - timedelta(days=days_ago)
    node = NodeExecution.objects.create(
        execution=run, node_id=f"n{next(_keys)}", node_type="agent", usage=usage, started_at=at, finished_at=at
    )
    row, _ = billing.ledger_post(
        user=run.owner, kind="usage", amount=-micro, idempotency_key=f"node:{node.pk}", execution=run,
        node_execution=node,
    )  # fmt: skip
    CreditTransaction.objects.filter(pk=row.pk).update(created_at=at)
    return row


def run_of(version) -> Execution:
    return Execution.objects.create(
        owner=version.workflow.owner, workflow=version.workflow, version=version, time_budget_seconds=60
    )


def grant(user, micro: int, *, days_ago: int = 0, kind: str = "grant") -> CreditTransaction:
    row, _ = billing.ledger_post(user=user, kind=kind, amount=micro, idempotency_key=f"page-test:{next(_keys)}")
    CreditTransaction.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return row


def section(html: str, section_id: str) -> str:
    match = re.search(rf'<section class="card[^"]*" id="{section_id}".*?</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(0)


def transaction_rows(html: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", section(html, "transactions"), re.S)
    return [text(row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)] if body else []


def day_rows(html: str) -> list[str]:
    table = re.search(r'<details class="chart-table">(.*?)</details>', html, re.S).group(1)
    return [text(row) for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)]


def test_a_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_new_user_sees_the_grant_the_plan_and_no_usage(signed_in: Client, member, no_payments) -> None:
    plan = Plan.objects.get(subscriptions__user=member)
    response = signed_in.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    page = text(html)
    assert f"Credits {credits(plan.monthly_grant)} credits" in page
    assert f"Runs at once 0 of {plan.max_concurrent_runs}" in page
    assert f"Runs today 0 of {plan.max_runs_per_day:,}" in page
    assert "No usage in this period." in page
    assert "No agent spent credits in this period." in page
    [row] = transaction_rows(html)
    assert " Grant " in row
    assert row.endswith(f"+{credits(plan.monthly_grant)} {credits(plan.monthly_grant)}")
    assert "Buying credits is not available on this server." in page
    assert CHECKOUT not in html


def test_the_charts_show_usage_by_day_agent_model_and_workflow(signed_in: Client, member, flow) -> None:
    researcher = Agent.objects.create(owner=member, name="Researcher", model="gpt-4o-mini")
    run = run_of(flow)
    charge(run, 2 * MICRO, days_ago=0, **GPT, input_tokens=100, output_tokens=10, agent_id=researcher.pk)
    charge(run, 500_000, days_ago=3, **CLAUDE, input_tokens=40, output_tokens=4, agent_id=researcher.pk)
    charge(run, 250_000, days_ago=40, **GPT, input_tokens=1, output_tokens=1)  # outside 30 days

    html = signed_in.get(URL).content.decode()

    assert re.search(r'<span id="usage-total">2.5</span>', html)
    assert 'aria-label="Credits used per day from ' in html
    assert ': 2.5 in all."' in html
    days = day_rows(html)
    assert len(days) == 30
    assert days[-1].endswith("2 1 100 10")
    assert days[-4].endswith("0.5 1 40 4")
    assert html.count('class="day-chart-bar"') == 2
    # The busiest day's bar is the full height; the other is a quarter of it.
    heights = [float(h) for h in re.findall(r'class="day-chart-bar"[^>]* height="([0-9.]+)"', html)]
    assert sorted(heights) == [38.0, 152.0]
    agents = text(section(html, "usage-by-agent"))
    assert "Researcher 2.5 1" in agents
    models = text(section(html, "usage-by-model"))
    assert models.index("gpt-4o-mini openai 2 1") < models.index("claude-haiku anthropic 0.5 1")
    assert "Nightly digest 2.5 1" in text(section(html, "usage-by-workflow"))
    assert 'style="width: 100%"' in section(html, "usage-by-model")
    assert 'style="width: 25%"' in section(html, "usage-by-model")

    wider = signed_in.get(URL, {"days": 90}).content.decode()
    assert len(day_rows(wider)) == 90
    assert re.search(r'<span id="usage-total">2.75</span>', wider)
    assert 'href="?days=90" aria-current="page"' in wider
    week = signed_in.get(URL, {"days": 7}).content.decode()
    assert len(day_rows(week)) == 7


def test_a_real_run_costs_what_the_page_says(signed_in: Client, member, priced_flow) -> None:
    execution = run_to_the_end(priced_flow, member)
    html = signed_in.get(URL).content.decode()
    assert re.search(rf'<span id="usage-total">{re.escape(credits(execution.cost))}</span>', html)
    assert "scripted-1" in text(section(html, "usage-by-model"))
    usage_rows = [row for row in transaction_rows(html) if " Usage " in f" {row} "]
    assert usage_rows
    assert usage_rows[0].endswith(f"-{credits(execution.cost)} {credits(billing.balance_of(member))}")
    assert "Support triage" in usage_rows[0]


def test_an_unknown_period_or_kind_is_a_400_that_names_the_filter_and_shows_the_defaults(
    signed_in: Client, member
) -> None:
    response = signed_in.get(URL, {"days": "15", "kind": "gift"})
    assert response.status_code == 400
    page = text(response.content.decode())
    assert "Period: Select a valid choice." in page
    assert "Kind: Select a valid choice." in page
    assert len(day_rows(response.content.decode())) == 30


def test_transactions_filter_by_kind_and_paginate_newest_first(signed_in: Client, member, flow) -> None:
    run = run_of(flow)
    for index in range(24):
        charge(run, 1000 * (index + 1), days_ago=0, **GPT)
    grant(member, 3 * MICRO, kind="adjustment")

    first = signed_in.get(URL).content.decode()
    rows = transaction_rows(first)
    assert len(rows) == 20
    assert " Adjustment " in f" {rows[0]} "  # the newest
    assert "Page 1 of 2" in text(first)
    second = signed_in.get(URL, {"page": 2}).content.decode()
    assert len(transaction_rows(second)) == 6  # 26 rows: 24 usage, the adjustment, the plan's grant
    assert " Grant " in f" {transaction_rows(second)[-1]} "  # the oldest

    usage = signed_in.get(URL, {"kind": "usage"}).content.decode()
    assert len(transaction_rows(usage)) == 20
    assert all(" Usage " in f" {row} " for row in transaction_rows(usage))
    assert 'href="?kind=usage#transactions" aria-current="page"' in usage
    assert 'rel="next" href="?kind=usage&amp;page=2"' in usage

    topups = signed_in.get(URL, {"kind": "topup"}).content.decode()
    assert transaction_rows(topups) == []
    assert "No transactions of this kind" in text(topups)


def test_another_users_money_is_not_shown(signed_in: Client, member) -> None:
    other = UserFactory(username="mallory")
    other_flow = published(other, [("in", "input", {"name": "text"})], [], name="Mallory's flow")
    charge(run_of(other_flow), 7 * MICRO, **GPT)
    grant(other, 123 * MICRO)
    html = signed_in.get(URL).content.decode()
    assert "Mallory" not in html
    assert "123" not in text(section(html, "transactions"))
    assert re.search(r'<span id="usage-total">0</span>', html)


def test_the_packs_are_offered_when_payments_are_configured(signed_in: Client, stripe_loopback) -> None:
    html = signed_in.get(URL).content.decode()
    buy = text(section(html, "buy"))
    assert "10 credits 10.00 USD Buy 10 credits" in buy
    assert "50 credits 45.00 USD Buy 50 credits" in buy
    assert "200 credits 160.00 USD Buy 200 credits" in buy
    assert html.count(f'action="{CHECKOUT}"') == 3


def test_buying_a_pack_creates_a_checkout_session_and_sends_the_buyer_to_stripe(
    signed_in: Client, member, stripe_loopback
) -> None:
    response = signed_in.post(CHECKOUT, {"pack": "builder"})

    [sent] = stripe_loopback.requests
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    form = sent["form"]
    assert (sent["method"], sent["path"]) == ("POST", "/v1/checkout/sessions")
    assert form["metadata[pack]"] == "builder"
    assert form["metadata[user_id]"] == str(member.pk)
    assert form["success_url"] == "http://testserver/billing/?checkout=success"
    assert form["cancel_url"] == "http://testserver/billing/?checkout=cancelled"
    assert not CreditTransaction.objects.filter(user=member, kind="topup").exists()


def test_an_unknown_pack_or_a_failing_stripe_changes_nothing_and_says_why(
    signed_in: Client, member, stripe_loopback, settings
) -> None:
    response = signed_in.post(CHECKOUT, {"pack": "mega"}, follow=True)
    assert response.redirect_chain[-1] == ("http://testserver/billing/#buy", 302)
    assert "Pack: there is no such credit pack" in text(response.content.decode())
    assert stripe_loopback.requests == []

    settings.STRIPE_SECRET_KEY = "sk_test_wrong"
    response = signed_in.post(CHECKOUT, {"pack": "starter"}, follow=True)
    assert "The payment provider could not be reached; nothing was charged." in text(response.content.decode())
    assert not CreditTransaction.objects.filter(user=member, kind="topup").exists()


def test_checkout_without_payments_is_refused_politely(signed_in: Client, no_payments) -> None:
    response = signed_in.post(CHECKOUT, {"pack": "starter"}, follow=True)
    assert response.status_code == 200
    assert "Buying credits is not available on this server." in text(response.content.decode())


def test_checkout_is_post_only_with_csrf_and_for_signed_in_users(client: Client, member, stripe_loopback) -> None:
    assert client.post(CHECKOUT, {"pack": "starter"}).status_code == 302  # to sign in
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    assert browser.post(CHECKOUT, {"pack": "starter"}).status_code == 403
    assert browser.get(CHECKOUT).status_code == 405
    assert stripe_loopback.requests == []


def test_coming_back_from_stripe_shows_what_happened(signed_in: Client) -> None:
    success = text(signed_in.get(URL, {"checkout": "success"}).content.decode())
    assert "Thank you! Your payment went through" in success
    cancelled = text(signed_in.get(URL, {"checkout": "cancelled"}).content.decode())
    assert "The purchase was cancelled; nothing was charged." in cancelled
    other = text(signed_in.get(URL, {"checkout": "<script>"}).content.decode())
    assert "Thank you" not in other
    assert "cancelled; nothing" not in other


@pytest.mark.parametrize("count", [1, 40])
def test_the_query_count_does_not_grow_with_transactions_or_days(
    signed_in: Client, member, flow, count: int, django_assert_num_queries, no_payments
) -> None:
    run = run_of(flow)
    agent = Agent.objects.create(owner=member, name="Researcher", model="gpt-4o-mini")
    for index in range(count):
        charge(run, 1000, days_ago=index % 30, **GPT, input_tokens=3, output_tokens=1, agent_id=agent.pk)
    # session, user, balance, subscription with plan, plan usage counts, usage totals, usage by
    # model, by agent, agent names, by workflow, daily usage, transactions count, transactions page
    with django_assert_num_queries(13):
        response = signed_in.get(URL)
    assert response.status_code == 200
    assert len(transaction_rows(response.content.decode())) == min(count + 1, 20)
