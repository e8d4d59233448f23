"""
The runs pages: `/runs/` (filters, pages, empty states) and `/runs/<id>/` (the run and its
timeline as stored, the seq the live client resumes after), cancel and retry, ownership.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from apps.billing.models import credits
from apps.executions.models import Execution, ExecutionEvent, NodeExecution, RunArtifact
from apps.executions.pages import PREVIEW_CHARS, RUNS_PER_PAGE
from tests.factories import UserFactory, published
from tests.pages.conftest import run_to_the_end, stored_runs

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<tr data-run="([0-9a-f-]+)">(.*?)</tr>', re.S)
NODE = re.compile(r'<li class="node is-[a-z_]+" data-node-id="([^"]+)" data-attempt="(\d+)" data-status="([a-z_]+)"')


def text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def listed(html: str) -> list[tuple[str, str]]:
    """(run id, the row's text) of each listed run, in order."""
    return [(run_id, text(row)) for run_id, row in ROW.findall(html)]


def timeline(html: str) -> list[tuple[str, str, str]]:
    return NODE.findall(html)


def data(html: str, name: str) -> str:
    return re.search(rf'<div id="run"[^>]* data-{name}="([^"]*)"', html, re.S).group(1)


# --- the list ---------------------------------------------------------------------------------


def test_visitors_are_sent_to_sign_in(client: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["succeeded"])
    for path in ("/runs/", f"/runs/{run.pk}/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    response = client.post(f"/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    assert Execution.objects.get(pk=run.pk).status == "succeeded"


def test_a_user_without_runs_sees_the_empty_state(signed_in: Client) -> None:
    response = signed_in.get("/runs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No runs yet" in text(html)
    assert "<table" not in html
    assert '<a class="nav-link" href="/runs/" aria-current="page">Runs</a>' in html


def test_runs_are_listed_newest_first_with_status_workflow_duration_and_cost(
    signed_in: Client, member, priced_flow
) -> None:
    made = stored_runs(priced_flow, member, ["succeeded", "failed", "running"])

    rows = listed(signed_in.get("/runs/").content.decode())

    assert [run_id for run_id, _ in rows] == [str(run.pk) for run in reversed(made)]
    assert rows[0][1].startswith("Running Support triage")
    assert rows[1][1].startswith("Failed Support triage")
    assert rows[1][1].endswith(f"3.0 s {credits(1_500)}")
    assert rows[0][1].endswith(f"— {credits(3_000)}")
    assert f'href="/runs/{made[0].pk}/"' in signed_in.get("/runs/").content.decode()


def test_the_status_filter_keeps_only_runs_in_that_state(signed_in: Client, member, priced_flow) -> None:
    made = stored_runs(priced_flow, member, ["succeeded", "failed", "failed", "running"])

    rows = listed(signed_in.get("/runs/", {"status": "failed"}).content.decode())

    assert [run_id for run_id, _ in rows] == [str(made[2].pk), str(made[1].pk)]


def test_the_workflow_filter_keeps_only_that_workflows_runs(signed_in: Client, member, priced_flow) -> None:
    other_flow = published(member, [("in", "input", {"name": "text"})], [], name="Invoices")
    theirs = stored_runs(other_flow, member, ["succeeded"])
    stored_runs(priced_flow, member, ["succeeded", "failed"])

    html = signed_in.get("/runs/", {"workflow": other_flow.workflow_id}).content.decode()

    assert [run_id for run_id, _ in listed(html)] == [str(theirs[0].pk)]
    assert f'<option value="{other_flow.workflow_id}" selected>Invoices</option>' in html


def test_the_period_filter_keeps_only_recent_runs(signed_in: Client, member, priced_flow) -> None:
    old, recent = stored_runs(priced_flow, member, ["succeeded", "succeeded"])
    Execution.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))

    day = listed(signed_in.get("/runs/", {"period": "24h"}).content.decode())
    week = listed(signed_in.get("/runs/", {"period": "7d"}).content.decode())

    assert [run_id for run_id, _ in day] == [str(recent.pk)]
    assert [run_id for run_id, _ in week] == [str(recent.pk), str(old.pk)]


def test_filters_that_match_nothing_offer_to_clear_them(signed_in: Client, member, priced_flow) -> None:
    stored_runs(priced_flow, member, ["succeeded"])

    page = text(signed_in.get("/runs/", {"status": "timed_out"}).content.decode())

    assert "No runs match these filters" in page
    assert "Clear the filters" in page


@pytest.mark.parametrize(
    ("query", "field"),
    [({"status": "exploded"}, "Status"), ({"period": "forever"}, "Period"), ({"workflow": "abc"}, "Workflow")],
)
def test_a_bad_filter_is_a_400_naming_the_field(signed_in: Client, member, priced_flow, query, field) -> None:
    stored_runs(priced_flow, member, ["succeeded"])

    response = signed_in.get("/runs/", query)

    assert response.status_code == 400
    html = response.content.decode()
    assert f"{field}: Select a valid choice." in text(html)
    assert listed(html) == []


def test_another_users_workflow_is_not_a_choice(signed_in: Client, member, priced_flow) -> None:
    other = UserFactory(username="grace")
    their_flow = published(other, [("in", "input", {"name": "text"})], [], name="Grace's flow")
    stored_runs(their_flow, other, ["succeeded"])

    response = signed_in.get("/runs/", {"workflow": their_flow.workflow_id})

    assert response.status_code == 400
    assert "Grace" not in response.content.decode()


def test_htmx_gets_the_table_alone(signed_in: Client, member, priced_flow) -> None:
    stored_runs(priced_flow, member, ["succeeded", "failed"])

    response = signed_in.get("/runs/", {"status": "failed"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="run-table"')
    assert "<html" not in html
    assert len(listed(html)) == 1


def test_runs_are_paginated_and_the_filters_survive_the_pages(signed_in: Client, member, priced_flow) -> None:
    count = RUNS_PER_PAGE + 5
    made = stored_runs(priced_flow, member, ["failed"] * count + ["succeeded"])

    first = signed_in.get("/runs/", {"status": "failed"}).content.decode()
    second = signed_in.get("/runs/", {"status": "failed", "page": 2}).content.decode()

    assert len(listed(first)) == RUNS_PER_PAGE
    assert "Page 1 of 2" in text(first)
    assert 'href="?status=failed&amp;page=2"' in first
    assert [run_id for run_id, _ in listed(second)] == [str(run.pk) for run in reversed(made[:5])]


def test_another_users_runs_are_never_listed(signed_in: Client, member, priced_flow) -> None:
    other = UserFactory(username="grace")
    their_flow = published(other, [("in", "input", {"name": "text"})], [], name="Grace's flow")
    stored_runs(their_flow, other, ["succeeded", "failed"])

    assert "No runs yet" in text(signed_in.get("/runs/").content.decode())


@pytest.mark.parametrize("count", [1, 40])
def test_the_list_query_count_does_not_grow_with_the_runs(
    signed_in: Client, member, priced_flow, count: int, django_assert_num_queries
) -> None:
    stored_runs(priced_flow, member, ["succeeded", "running"] * (count // 2) or ["succeeded"])
    # session, user, the chosen workflow (the form's check), count, the page of runs, the
    # workflows offered in the form, the header's balance
    with django_assert_num_queries(7):
        response = signed_in.get("/runs/", {"status": "succeeded", "workflow": priced_flow.workflow_id})
    assert len(listed(response.content.decode())) == max(1, min(count // 2, RUNS_PER_PAGE))


# --- one run ----------------------------------------------------------------------------------


def test_a_finished_run_shows_its_timeline_text_cost_and_no_socket_is_needed(
    signed_in: Client, member, priced_flow
) -> None:
    run = run_to_the_end(priced_flow, member)

    html = signed_in.get(f"/runs/{run.pk}/").content.decode()

    assert timeline(html) == [("in", "1", "succeeded"), ("answer", "1", "succeeded"), ("out", "1", "succeeded")]
    page = text(html)
    assert "Run of Support triage" in page
    assert "Version 1" in page
    assert "a short scripted answer" in page
    assert f"Cost {credits(run.cost)} credits" in page
    last = ExecutionEvent.objects.filter(execution=run).order_by("-seq").first().seq
    assert data(html, "after-seq") == data(html, "nodes-seq") == str(last)
    assert data(html, "status") == "succeeded"
    assert 'data-state="finished"' in html
    # A finished run offers no cancel; a succeeded one no retry.
    assert re.search(r'data-action="cancel" hidden', html)
    assert re.search(r'data-action="retry" hidden', html)


def test_a_failed_node_shows_its_error_and_the_run_offers_retry(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["failed"])
    Execution.objects.filter(pk=run.pk).update(error_code="node_failed", error_message="node 'answer' failed")
    NodeExecution.objects.create(
        execution=run,
        node_id="answer",
        node_type="llm",
        status="failed",
        error_code="provider_error",
        error_message="the model said no",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        duration_ms=1200,
    )

    html = signed_in.get(f"/runs/{run.pk}/").content.decode()

    assert timeline(html) == [("answer", "1", "failed")]
    assert "provider_error the model said no" in text(html)
    assert "node_failed node 'answer' failed" in text(html)
    assert "1.2 s" in text(html)
    assert not re.search(r'data-action="retry" hidden', html)


def test_long_values_are_shortened_with_a_way_to_see_all(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["running"])
    long = "x" * (PREVIEW_CHARS * 2)
    NodeExecution.objects.create(
        execution=run, node_id="in", node_type="input", inputs={"text": long}, started_at=timezone.now()
    )

    html = signed_in.get(f"/runs/{run.pk}/").content.decode()

    assert "Show all (" in html
    assert html.count(long) == 1  # once, behind "Show all"; the preview is shorter
    assert 'data-state="connecting"' in html
    assert not re.search(r'data-action="cancel" hidden', html)


def test_screenshots_show_from_the_artifacts_download_url(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["succeeded"])
    node = NodeExecution.objects.create(
        execution=run, node_id="web", node_type="browser", status="succeeded", started_at=timezone.now()
    )
    artifact = RunArtifact(execution=run, node_execution=node, kind="screenshot", name="home.png", size=3)
    artifact.content_type = "image/png"
    artifact.file.save("home.png", ContentFile(b"png"), save=True)

    html = signed_in.get(f"/runs/{run.pk}/").content.decode()

    url = f"/api/v1/executions/{run.pk}/artifacts/{artifact.pk}/"
    assert f'<img src="{url}" alt="Screenshot: home.png"' in html
    assert signed_in.get(url).status_code == 200


@pytest.mark.parametrize("nodes", [1, 12])
def test_the_run_page_query_count_does_not_grow_with_the_nodes(
    signed_in: Client, member, priced_flow, nodes: int, django_assert_num_queries
) -> None:
    (run,) = stored_runs(priced_flow, member, ["running"])
    for index in range(nodes):
        node = NodeExecution.objects.create(
            execution=run, node_id=f"n{index}", node_type="browser", started_at=timezone.now()
        )
        RunArtifact.objects.create(
            execution=run, node_execution=node, kind="screenshot", name="a.png", file="a.png", size=1
        )
    # session, user, the run with its workflow and version, node attempts, their screenshots, balance
    with django_assert_num_queries(6):
        response = signed_in.get(f"/runs/{run.pk}/")
    assert len(timeline(response.content.decode())) == nodes


def test_another_users_run_is_a_404_everywhere(signed_in: Client, member) -> None:
    other = UserFactory(username="grace")
    their_flow = published(other, [("in", "input", {"name": "text"})], [], name="Grace's flow")
    running, failed = stored_runs(their_flow, other, ["running", "failed"])

    assert signed_in.get(f"/runs/{running.pk}/").status_code == 404
    assert signed_in.post(f"/runs/{running.pk}/cancel/").status_code == 404
    assert signed_in.post(f"/runs/{failed.pk}/retry/").status_code == 404
    assert Execution.objects.get(pk=running.pk).status == "running"
    assert Execution.objects.filter(owner=other).count() == 2
    assert signed_in.get("/runs/00000000-0000-0000-0000-000000000000/").status_code == 404


# --- cancel and retry -------------------------------------------------------------------------


def test_cancel_stops_a_queued_run_and_comes_back_to_its_page(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["queued"])

    response = signed_in.post(f"/runs/{run.pk}/cancel/", follow=True)

    assert response.redirect_chain == [(f"/runs/{run.pk}/", 302)]
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert ExecutionEvent.objects.filter(execution=run, type="execution.status").last().payload["status"] == "cancelled"
    assert "The run was cancelled." in text(response.content.decode())


def test_cancel_of_a_finished_run_changes_nothing_and_says_why(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["succeeded"])

    response = signed_in.post(f"/runs/{run.pk}/cancel/", follow=True)

    assert Execution.objects.get(pk=run.pk).status == "succeeded"
    assert "The run has already finished" in text(response.content.decode())


def test_retry_starts_a_new_run_and_lands_on_its_page(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["failed"])
    Execution.objects.filter(pk=run.pk).update(inputs={"text": "hello"})

    response = signed_in.post(f"/runs/{run.pk}/retry/")

    retry = Execution.objects.get(retry_of=run)
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{retry.pk}/"
    assert retry.status == "queued"
    assert retry.trigger == "ui"
    page = text(signed_in.get(response["Location"]).content.decode())
    assert "A new run of the same version and inputs has started." in page
    assert "Retry of the earlier run" in page


def test_retry_of_a_succeeded_run_is_refused(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["succeeded"])

    response = signed_in.post(f"/runs/{run.pk}/retry/", follow=True)

    assert not Execution.objects.filter(retry_of=run).exists()
    assert "The run could not be retried" in text(response.content.decode())


def test_actions_are_post_only(signed_in: Client, member, priced_flow) -> None:
    (run,) = stored_runs(priced_flow, member, ["queued"])
    assert signed_in.get(f"/runs/{run.pk}/cancel/").status_code == 405
    assert signed_in.get(f"/runs/{run.pk}/retry/").status_code == 405
    assert signed_in.post(f"/runs/{run.pk}/").status_code == 405
    assert Execution.objects.get(pk=run.pk).status == "queued"


def test_the_run_page_speaks_the_users_language(signed_in: Client, member, priced_flow) -> None:
    member.language = "zh-hans"
    member.save(update_fields=["language"])
    (run,) = stored_runs(priced_flow, member, ["succeeded"])

    html = signed_in.get(f"/runs/{run.pk}/").content.decode()

    assert '<html lang="zh-hans"' in html
