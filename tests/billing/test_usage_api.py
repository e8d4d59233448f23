"""
`/api/v1/billing/usage/`, `usage/history/` and `agent-breakdown/`: every figure is checked against
sums computed here, in Python, from the user's ledger rows and their node runs' usage.
"""

from __future__ import annotations

import itertools
import zoneinfo
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from apps.agents.models import Agent
from apps.billing import services
from apps.billing.models import MICRO, CreditTransaction, credits
from apps.executions.models import Execution, NodeExecution
from apps.users.services import api_key_create
from tests.api.conftest import ApiClient, error
from tests.factories import UserFactory, published

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 8, tzinfo=UTC)
PERIOD = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-08T00:00:00Z"}
TINY = timedelta(microseconds=1)

GPT = {"provider": "openai", "model": "gpt-4o"}
CLAUDE = {"provider": "anthropic", "model": "claude-sonnet"}
USAGE, HISTORY, BREAKDOWN = (
    "/api/v1/billing/usage/",
    "/api/v1/billing/usage/history/",
    "/api/v1/billing/agent-breakdown/",
)

_keys = itertools.count()


# --- Charges, posted the way the engine posts them ---------------------------------------------------


def workflow_of(owner, name: str):
    return published(
        owner,
        [("in", "input", {"name": "t"}), ("o", "output", {"name": "o"})],
        [("in", "value", "o", "value")],
        name=name,
    )


def run_of(version) -> Execution:
    return Execution.objects.create(
        owner=version.workflow.owner, workflow=version.workflow, version=version, time_budget_seconds=60
    )


def backdated(row: CreditTransaction, at: datetime) -> CreditTransaction:
    CreditTransaction.objects.filter(pk=row.pk).update(created_at=at)
    row.created_at = at
    return row


def charge(run: Execution, at: datetime, micro: int, node_type: str = "llm", **usage) -> CreditTransaction:
    """A finished node run with `usage`, and its `usage` ledger row of `-micro` at `at`."""
    node = NodeExecution.objects.create(
        execution=run, node_id=f"n{next(_keys)}", node_type=node_type, usage=usage, started_at=at, finished_at=at
    )
    row, _ = services.ledger_post(
        user=run.owner,
        kind="usage",
        amount=-micro,
        idempotency_key=f"node:{node.pk}",
        execution=run,
        node_execution=node,
    )
    return backdated(row, at)


def refund(user, at: datetime, micro: int, run: Execution | None = None, node=None) -> CreditTransaction:
    row, _ = services.ledger_post(
        user=user,
        kind="refund",
        amount=micro,
        idempotency_key=f"refund:{next(_keys)}",
        execution=run,
        node_execution=node,
    )
    return backdated(row, at)


def tokens(model: dict, given: int, got: int, **more) -> dict:
    return {**model, "input_tokens": given, "output_tokens": got, **more}


@pytest.fixture
def owner():
    return UserFactory(username="owner")


@pytest.fixture
def stranger():
    return UserFactory(username="stranger")


def keyed(user, *scopes: str) -> ApiClient:
    return ApiClient(api_key_create(owner=user, name=f"key {next(_keys)}", scopes=list(scopes))[1])


@pytest.fixture
def api(owner) -> ApiClient:
    return keyed(owner, "read")


@pytest.fixture
def books(owner, stranger) -> dict:
    """
    The owner's month: two workflows, two agents (one deleted since), two models and per-call
    nodes, a run deleted since, refunds, rows just outside the period, and a stranger
    using the same models in the same days.
    """
    researcher = Agent.objects.create(owner=owner, name="Researcher", model="claude-sonnet")
    writer = Agent.objects.create(owner=owner, name="Writer", model="gpt-4o")
    theirs = Agent.objects.create(owner=stranger, name="Theirs", model="gpt-4o")
    digest, triage, scratch = (workflow_of(owner, name) for name in ("Digest", "Triage", "Scratch"))
    r1, r2, r3, r4 = run_of(digest), run_of(digest), run_of(triage), run_of(triage)
    gpt_node = charge(r1, START, 1_500_000, **tokens(GPT, 100, 50))  # at `start`: in
    charge(r1, START + timedelta(seconds=5), 10_000, node_type="http_request")  # a per-call price
    charge(
        r1,
        datetime(2025, 3, 2, 10, tzinfo=UTC),
        2_300_000,
        "agent",
        **tokens(CLAUDE, 300, 120, agent_id=researcher.pk, tool_calls=2),
    )
    charge(r2, datetime(2025, 3, 3, 20, tzinfo=UTC), 700_000, "agent", **tokens(GPT, 40, 30, agent_id=writer.pk))
    charge(r2, datetime(2025, 3, 4, tzinfo=UTC) - TINY, 250_000, **tokens(CLAUDE, 20, 10))
    charge(r3, END - TINY, 3_100_000, **tokens(GPT, 1000, 400))  # the last moment: in
    charge(r3, END, 9 * MICRO, **tokens(GPT, 7, 7))  # at `end`: out
    charge(r4, START - TINY, 8 * MICRO, **tokens(CLAUDE, 5, 5))  # just before: out
    charge(r4, datetime(2025, 3, 5, 12, tzinfo=UTC), 400_000, "agent", **tokens(CLAUDE, 60, 6, agent_id=researcher.pk))
    # An agent id that is not the owner's (the engine refuses these; the name must not leak anyway).
    charge(r4, datetime(2025, 3, 5, 13, tzinfo=UTC), 30_000, "agent", **tokens(GPT, 3, 3, agent_id=theirs.pk))
    scratch_run = run_of(scratch)
    charge(scratch_run, datetime(2025, 3, 5, 14, tzinfo=UTC), 120_000, **tokens(GPT, 11, 12))
    refund(owner, datetime(2025, 3, 4, 9, tzinfo=UTC), 200_000, run=r2)  # a whole run
    refund(owner, datetime(2025, 3, 5, 9, tzinfo=UTC), 500_000, run=r1, node=gpt_node.node_execution)
    refund(owner, datetime(2025, 3, 9, tzinfo=UTC), 1 * MICRO, run=r3)  # after the period
    refund(owner, datetime(2025, 3, 4, tzinfo=UTC), 50_000)  # tied to no run
    grant, _ = services.ledger_post(user=owner, kind="grant", amount=5 * MICRO, idempotency_key="grant:owner")
    backdated(grant, START)  # not usage: in no figure
    writer_id = writer.pk
    writer.delete()
    scratch_run.delete()  # by an operator: its node runs go; the ledger keeps the charge, unattached

    s_flow = workflow_of(stranger, "Theirs")
    s_run = run_of(s_flow)
    charge(s_run, datetime(2025, 3, 2, tzinfo=UTC), 4_000_000, "agent", **tokens(GPT, 999, 999, agent_id=theirs.pk))
    charge(s_run, datetime(2025, 3, 3, tzinfo=UTC), 600_000, **tokens(CLAUDE, 77, 77))
    refund(stranger, datetime(2025, 3, 3, tzinfo=UTC), 100_000, run=s_run)
    return {"researcher": researcher, "writer_id": writer_id, "theirs": theirs}


# --- The same figures, computed in Python from the rows -------------------------------------------


def ledger(user, start: datetime = START, end: datetime = END) -> list[CreditTransaction]:
    rows = CreditTransaction.objects.filter(user=user).select_related("node_execution", "execution__workflow")
    return [row for row in rows if start <= row.created_at < end]


def used(row: CreditTransaction) -> dict:
    return row.node_execution.usage if row.node_execution else {}


def figures(rows: list[CreditTransaction], tokens: bool = True) -> dict:
    usage = [row for row in rows if row.kind == "usage"]
    result = {
        "runs": len({row.execution_id for row in usage if row.execution_id}),
        "credits": credits(-sum(row.amount for row in usage)),
    }
    if tokens:
        result["input_tokens"] = sum(used(row).get("input_tokens", 0) for row in usage)
        result["output_tokens"] = sum(used(row).get("output_tokens", 0) for row in usage)
    return result


def spent(rows: list[CreditTransaction]) -> int:
    return -sum(row.amount for row in rows if row.kind == "usage")


def expected_usage(user, start: datetime = START, end: datetime = END) -> dict:
    rows = ledger(user, start, end)
    run_refunds = [row for row in rows if row.kind == "refund" and row.execution_id]
    groups = defaultdict(list)
    for row in rows:
        if row.kind == "usage" or (row in run_refunds and row.node_execution_id):
            groups[used(row).get("provider", ""), used(row).get("model", "")].append(row)
    by_model = [
        {
            "provider": provider,
            "model": model,
            **figures(group),
            "refunded": credits(sum(row.amount for row in group if row.kind == "refund")),
        }
        for (provider, model), group in sorted(groups.items(), key=lambda item: (-spent(item[1]), item[0]))
    ]
    return {
        **figures(rows),
        "refunded": credits(sum(row.amount for row in run_refunds)),
        "by_model": by_model,
    }


def expected_breakdown(user) -> dict:
    usage = [row for row in ledger(user) if row.kind == "usage"]
    agents, workflows = defaultdict(list), defaultdict(list)
    for row in usage:
        if "agent_id" in used(row):
            agents[used(row)["agent_id"]].append(row)
        workflow = row.execution.workflow if row.execution else None
        workflows[(workflow.pk, workflow.name) if workflow else (None, None)].append(row)
    names = {agent.pk: agent.name for agent in Agent.objects.filter(owner=user)}
    return {
        "agents": [
            {"id": pk, "name": names.get(pk), **figures(group, tokens=False)}
            for pk, group in sorted(agents.items(), key=lambda item: (-spent(item[1]), item[0]))
        ],
        "workflows": [
            {"id": pk, "name": name, **figures(group, tokens=False)}
            for (pk, name), group in sorted(workflows.items(), key=lambda item: (-spent(item[1]), item[0][0] or 0))
        ],
    }


def expected_days(user, zone: zoneinfo.ZoneInfo) -> list[dict]:
    days = defaultdict(list)
    for row in ledger(user):
        if row.kind == "usage":
            days[row.created_at.astimezone(zone).date()].append(row)
    first, last = START.astimezone(zone).date(), (END - TINY).astimezone(zone).date()
    every = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [{"date": day.isoformat(), **figures(days[day])} for day in every]


# --- Behaviours -------------------------------------------------------------------------------------


def test_usage_totals_and_models_are_the_ledgers_sums_for_the_period(api, owner, books):
    body = api.get(USAGE, PERIOD).json()
    assert body == {"start": PERIOD["start"], "end": PERIOD["end"], **expected_usage(owner)}
    # By hand, so the Python sums are checked too: four runs (the scratch run is gone), the rows
    # at `end` and just before `start` left out, the refund after the period and the one of no run too.
    assert (body["runs"], body["credits"], body["refunded"]) == (4, "8.41", "0.7")
    assert body["input_tokens"] == 100 + 300 + 40 + 20 + 1000 + 60 + 3
    assert [(row["provider"], row["model"]) for row in body["by_model"]] == [
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet"),
        ("", ""),
    ]
    unattached = body["by_model"][2]
    assert unattached == {
        "provider": "",
        "model": "",
        "runs": 1,  # the http_request node's run; the deleted run is no run any more
        "input_tokens": 0,
        "output_tokens": 0,
        "credits": "0.13",
        "refunded": "0",
    }
    assert body["by_model"][0]["refunded"] == "0.5"


def test_usage_never_counts_another_users_rows(owner, stranger, books):
    theirs = keyed(stranger, "read")
    body = theirs.get(USAGE, PERIOD).json()
    assert body == {"start": PERIOD["start"], "end": PERIOD["end"], **expected_usage(stranger)}
    assert (body["runs"], body["credits"], body["refunded"], body["input_tokens"]) == (1, "4.6", "0.1", 1076)


def test_the_breakdown_lists_agents_and_workflows_by_credits(api, owner, books):
    body = api.get(BREAKDOWN, PERIOD).json()
    assert body == {"start": PERIOD["start"], "end": PERIOD["end"], **expected_breakdown(owner)}
    researcher, theirs = books["researcher"], books["theirs"]
    assert body["agents"] == [
        {"id": researcher.pk, "name": "Researcher", "credits": "2.7", "runs": 2},
        {"id": books["writer_id"], "name": None, "credits": "0.7", "runs": 1},  # deleted, still listed
        {"id": theirs.pk, "name": None, "credits": "0.03", "runs": 1},  # not the owner's: no name
    ]
    assert [(row["name"], row["credits"], row["runs"]) for row in body["workflows"]] == [
        ("Digest", "4.76", 2),
        ("Triage", "3.53", 2),
        (None, "0.12", 0),  # the deleted run's charge
    ]


def test_history_has_every_day_of_the_period_with_zeros_in_utc(api, owner, books):
    body = api.get(HISTORY, PERIOD).json()
    assert body["time_zone"] == "UTC"
    assert body["days"] == expected_days(owner, zoneinfo.ZoneInfo("UTC"))
    assert [row["date"] for row in body["days"]] == [f"2025-03-0{day}" for day in range(1, 8)]
    assert body["days"][5] == {
        "date": "2025-03-06",
        "credits": "0",
        "runs": 0,
        "input_tokens": 0,
        "output_tokens": 0,
    }
    assert body["days"][2]["credits"] == "0.95"  # 20:00 and the day's last moment, both March 3rd


@pytest.mark.parametrize(
    ("zone", "first", "last"),
    [("Asia/Tokyo", date(2025, 3, 1), date(2025, 3, 8)), ("America/Los_Angeles", date(2025, 2, 28), date(2025, 3, 7))],
)
def test_history_days_are_the_users_calendar_days(api, owner, books, zone, first, last):
    owner.time_zone = zone
    owner.save(update_fields=["time_zone"])
    body = api.get(HISTORY, PERIOD).json()
    assert body["time_zone"] == zone
    assert body["days"] == expected_days(owner, zoneinfo.ZoneInfo(zone))
    assert (body["days"][0]["date"], body["days"][-1]["date"]) == (first.isoformat(), last.isoformat())
    by_date = {row["date"]: row["credits"] for row in body["days"]}
    if zone == "Asia/Tokyo":
        # 20:00 UTC on March 3rd is 05:00 on the 4th in Tokyo; 23:59:59 UTC is 08:59:59 on the 4th.
        assert (by_date["2025-03-03"], by_date["2025-03-04"]) == ("0", "0.95")
    else:
        # `start` itself is 16:00 on February 28th in Los Angeles.
        assert by_date["2025-02-28"] == "1.51"


def test_the_period_defaults_to_the_last_30_days(api, owner):
    version = workflow_of(owner, "Now")
    now = timezone.now()
    charge(run_of(version), now - timedelta(days=1), 1_000_000, **tokens(GPT, 1, 2))
    charge(run_of(version), now - timedelta(days=31), 7_000_000, **tokens(GPT, 1, 2))
    body = api.get(USAGE).json()
    start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert end - start == timedelta(days=30)
    assert abs(end - timezone.now()) < timedelta(minutes=1)
    assert (body["credits"], body["runs"]) == ("1", 1)
    assert len(api.get(HISTORY).json()["days"]) == 31  # two partial days and 29 whole ones


def test_naive_times_are_utc_and_offsets_are_honoured(api, owner, books):
    expected = api.get(USAGE, PERIOD).json()
    assert api.get(USAGE, {"start": "2025-03-01T00:00:00", "end": "2025-03-08"}).json() == expected
    shifted = api.get(USAGE, {"start": "2025-03-01T09:00:00+09:00", "end": "2025-03-07T19:00:00-05:00"})
    assert shifted.json() == expected


def test_a_period_of_366_days_is_the_longest(api, owner, books):
    body = api.get(HISTORY, {"start": "2024-03-08T00:00:00Z", "end": "2025-03-09T00:00:00Z"}).json()
    assert len(body["days"]) == 366
    # A run a day from February 28th to March 8th but for the 4th and 6th: the edges are now in.
    assert sum(row["runs"] for row in body["days"]) == 7


@pytest.mark.parametrize("path", [USAGE, HISTORY, BREAKDOWN])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2025-13-01T00:00:00Z"}, "end"),
        ({"start": "2025-03-08T00:00:00Z", "end": "2025-03-01T00:00:00Z"}, "end"),
        ({"start": "2025-03-08T00:00:00Z", "end": "2025-03-08T00:00:00Z"}, "end"),
        ({"start": "2024-03-01T00:00:00Z", "end": "2025-03-02T00:00:01Z"}, "end"),
        ({"start": "2999-01-01T00:00:00Z"}, "start"),
        ({"start": "2025-03-01T00:00:00+15:00"}, "start"),
        ({"end": "0001-01-01T00:00:00+01:00"}, "end"),
        ({"end": "9999-12-31T23:59:59Z"}, "end"),
        ({"start": "1969-12-31T23:59:59Z", "end": "1970-01-02T00:00:00Z"}, "start"),
    ],
)
def test_a_bad_period_is_a_400_naming_the_parameter(api, path, params, field):
    response = api.get(path, params)
    assert (response.status_code, list(error(response)["fields"])) == (400, [field])
    assert error(response)["code"] == "invalid"


@pytest.mark.parametrize(("path", "queries"), [(USAGE, 3), (BREAKDOWN, 4), (HISTORY, 2)])
def test_each_report_costs_the_same_queries_for_few_and_many_rows(
    api, owner, books, path, queries, django_assert_num_queries
):
    api.get(path, PERIOD)  # the key's first use of the minute also records `last_used_at`
    with django_assert_num_queries(queries):  # the key, then the report's own
        assert api.get(path, PERIOD).status_code == 200
    version = workflow_of(owner, "More")
    for n in range(12):
        agent = Agent.objects.create(owner=owner, name=f"agent {n}", model="m")
        model = {"provider": f"p{n % 3}", "model": f"m{n}"}
        at = START + timedelta(hours=7 * n)
        charge(run_of(version), at, 1000 + n, "agent", **tokens(model, n, n, agent_id=agent.pk))
        refund(owner, at, 10, run=run_of(version))
    with django_assert_num_queries(queries):
        body = api.get(path, PERIOD).json()
    assert body != {}
    if path == USAGE:
        assert len(body["by_model"]) == 3 + 12


@pytest.mark.parametrize("path", [USAGE, HISTORY, BREAKDOWN])
def test_reports_need_the_read_scope_and_credentials(owner, client, path):
    assert keyed(owner, "read").get(path).status_code == 200
    refused = keyed(owner, "write", "execute").get(path)
    assert (refused.status_code, error(refused)["code"]) == (403, "missing_scope")
    assert client.get(path).status_code == 401


def test_whole_numbers_written_as_floats_still_count(api, owner):
    # JSON Schema's "integer" admits 3.0, so an agent node's config (and its usage) may hold one.
    agent = Agent.objects.create(owner=owner, name="Floaty", model="m")
    run = run_of(workflow_of(owner, "Floats"))
    charge(run, START, 1_000_000, "agent", **tokens(GPT, 12.0, 5.0, agent_id=float(agent.pk)))
    assert api.get(USAGE, PERIOD).json()["input_tokens"] == 12
    agents = api.get(BREAKDOWN, PERIOD).json()["agents"]
    assert agents == [{"id": agent.pk, "name": "Floaty", "credits": "1", "runs": 1}]


def test_a_user_with_no_usage_gets_zeros(api):
    assert api.get(USAGE, PERIOD).json() == {
        **PERIOD,
        "runs": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "credits": "0",
        "refunded": "0",
        "by_model": [],
    }
    assert api.get(BREAKDOWN, PERIOD).json() == {**PERIOD, "agents": [], "workflows": []}
    assert {row["credits"] for row in api.get(HISTORY, PERIOD).json()["days"]} == {"0"}
