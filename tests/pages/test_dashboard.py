"""The dashboard at `/`: recent runs, credits, plan usage, 30 days of usage, quick links."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.db.models import Sum
from django.test import Client

from apps.billing.models import CreditTransaction, Plan, credits
from apps.executions.models import Execution
from tests.factories import PASSWORD, UserFactory, published
from tests.pages.conftest import run_to_the_end, stored_runs

pytestmark = pytest.mark.django_db

ROW = re.compile(r"<tr[^>]*>\s*<td data-label=\"Status\">(.*?)</tr>", re.S)


def text(html: str) -> str:
    """The page's text, tags dropped and whitespace folded, for asserting what a reader sees."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def rows(html: str) -> list[str]:
    return [text(row) for row in ROW.findall(html)]


def test_a_visitor_is_sent_to_the_sign_in_page_and_back_after(client: Client, member) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"

    signed_in = client.post(response["Location"], {"login": "ada", "password": PASSWORD})
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/"


def test_a_new_user_sees_the_empty_state_their_grant_and_an_unused_plan(signed_in: Client, member) -> None:
    plan = Plan.objects.get(subscriptions__user=member)
    response = signed_in.get("/")

    assert response.status_code == 200
    page = text(response.content.decode())
    assert "No runs yet" in page
    assert "<table" not in response.content.decode()
    assert f"{credits(plan.monthly_grant)} credits" in page
    assert f"Runs at once 0 of {plan.max_concurrent_runs}" in page
    assert f"Runs today 0 of {plan.max_runs_per_day:,}" in page
    assert "Credits used per day over the last 30 days: 0 in all." in response.content.decode()
    assert "Busiest day" not in page


def test_finished_runs_show_their_status_workflow_duration_and_real_cost(
    signed_in: Client, member, priced_flow
) -> None:
    first = run_to_the_end(priced_flow, member)
    second = run_to_the_end(priced_flow, member)
    assert first.status == second.status == "succeeded"
    assert first.cost > 0

    html = signed_in.get("/").content.decode()

    shown = rows(html)
    assert len(shown) == 2
    for row, run in zip(shown, [second, first], strict=True):  # newest first
        assert row.startswith("Succeeded Support triage")
        assert row.endswith(credits(run.cost))
    spent = -CreditTransaction.objects.filter(user=member, kind="usage").aggregate(total=Sum("amount"))["total"]
    assert spent == first.cost + second.cost
    assert f"Credits used per day over the last 30 days: {credits(spent)} in all." in html
    assert "Busiest day: " in text(html)
    # The sparkline has one point per day, the last one (today) at the top of the chart.
    points = re.search(r'<polyline class="sparkline-line" points="([^"]+)"', html).group(1).split()
    assert len(points) == 30
    assert float(points[-1].split(",")[1]) == min(float(point.split(",")[1]) for point in points)


def test_only_the_ten_newest_runs_are_listed_newest_first(signed_in: Client, member, priced_flow) -> None:
    statuses = ["succeeded", "failed", "cancelled", "timed_out"] * 3
    stored_runs(priced_flow, member, statuses)

    shown = rows(signed_in.get("/").content.decode())

    assert len(shown) == 10
    for row, status in zip(shown, list(reversed(statuses))[:10], strict=True):
        assert row.startswith(f"{Execution.Status(status).label} Support triage")
    assert shown[0].endswith(credits(1_500 * 11))


def test_runs_in_flight_count_against_the_plan(signed_in: Client, member, priced_flow) -> None:
    stored_runs(priced_flow, member, ["queued", "running", "running", "succeeded"])

    page = text(signed_in.get("/").content.decode())

    plan = Plan.objects.get(subscriptions__user=member)
    assert f"Runs at once 3 of {plan.max_concurrent_runs}" in page
    assert f"Runs today 4 of {plan.max_runs_per_day:,}" in page
    assert "Running Support triage" in page
    assert "Queued Support triage" in page


def test_a_full_plan_is_marked(signed_in: Client, member, priced_flow) -> None:
    Plan.objects.filter(subscriptions__user=member).update(max_concurrent_runs=2)
    stored_runs(priced_flow, member, ["running", "running"])

    html = signed_in.get("/").content.decode()

    assert "Runs at once 2 of 2" in text(html)
    assert 'class="bar is-full"' in html


def test_another_users_runs_and_credits_never_show(signed_in: Client, member, priced_flow) -> None:
    other = UserFactory(username="grace")
    their_flow = published(other, [("in", "input", {"name": "text"})], [], name="Grace's secret flow")
    stored_runs(their_flow, other, ["succeeded", "running"])

    page = text(signed_in.get("/").content.decode())

    assert "Grace's secret flow" not in page
    assert "No runs yet" in page
    assert "Runs at once 0 of" in page


def test_the_header_shows_the_balance_and_the_navigation_marks_the_dashboard(signed_in: Client, member) -> None:
    html = signed_in.get("/").content.decode()

    balance = re.search(r'<a class="balance[^"]*" href="/billing/">(.*?)</a>\s*<nav', html, re.S).group(1)
    plan = Plan.objects.get(subscriptions__user=member)
    assert text(balance) == f"Credit balance: {credits(plan.monthly_grant)} credits"
    assert '<a class="nav-link" href="/" aria-current="page">Dashboard</a>' in html
    # Every item of the main navigation is a page that exists.
    main_nav = re.search(r'<nav id="main-nav".*?</nav>', html, re.S).group(0)
    assert re.findall(r'<a class="nav-link" href="([^"]+)"', main_nav) == [
        "/",
        "/agents/",
        "/workflows/",
        "/runs/",
        "/credentials/",
        "/accounts/api-keys/",
        "/billing/",
        "/accounts/profile/",
    ]
    assert "is-disabled" not in main_nav


@pytest.mark.parametrize("count", [2, 14])
def test_the_query_count_does_not_grow_with_the_runs(
    signed_in: Client, member, priced_flow, count: int, django_assert_num_queries
) -> None:
    stored_runs(priced_flow, member, ["succeeded", "running"] * (count // 2))
    # session, user, recent runs, balance, subscription with plan, plan usage counts, daily usage
    with django_assert_num_queries(7):
        response = signed_in.get("/")
    assert len(rows(response.content.decode())) == min(count, 10)


def test_the_dashboard_speaks_the_users_language(signed_in: Client, member) -> None:
    member.language = "zh-hans"
    member.save(update_fields=["language"])

    html = signed_in.get("/").content.decode()

    assert '<html lang="zh-hans"' in html
    assert "仪表盘" in html
    assert "还没有运行记录" in html


def test_the_dashboard_answers_get_only(signed_in: Client) -> None:
    assert signed_in.post("/").status_code == 405


def test_names_are_escaped_once(client: Client, priced_flow, member) -> None:
    member.display_name = "<b>Ada</b> & co"
    member.save(update_fields=["display_name"])
    priced_flow.workflow.name = "<script>alert(1)</script>"
    priced_flow.workflow.save(update_fields=["name"])
    stored_runs(priced_flow, member, ["succeeded"])
    client.force_login(member)

    html = client.get("/").content.decode()

    assert "Welcome back, &lt;b&gt;Ada&lt;/b&gt; &amp; co." in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "&amp;lt;" not in html
