"""
Pages of runs for end users. The dashboard: recent runs, credits and plan usage, 30 days of usage;
the runs list (filters, pages); a run's page (its timeline, followed live by static/js/run.js), with
cancel and retry.

Each figure is one query whatever the number of runs (a test pins the count), and each is scoped
to the signed-in user (runs through `visible_to(user)`).
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST, require_safe

from apps.billing import services as billing
from apps.billing.usage import usage_daily, user_zone
from apps.executions import services
from apps.executions.models import Execution, NodeExecution, RunArtifact
from apps.workflows.models import Workflow

RECENT_RUNS = 10
USAGE_DAYS = 30


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """`/`: the signed-in user's dashboard; a visitor is sent to the sign-in page, and back here after."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    user = request.user
    context = {
        "recent_runs": recent_runs(user),
        "credit_balance": billing.balance_of(user),
        "plan": billing.plan_usage(user),
        "usage": usage_last_days(user, days=USAGE_DAYS),
    }
    return render(request, "app/dashboard.html", context)


def recent_runs(user: Any, *, limit: int = RECENT_RUNS) -> list[Execution]:
    return list(
        Execution.objects.visible_to(user)
        .select_related("workflow")
        .only("id", "status", "cost", "created_at", "started_at", "finished_at", "workflow__id", "workflow__name")
        .order_by("-created_at")[:limit]
    )


def usage_last_days(user: Any, *, days: int) -> dict[str, Any]:
    """Credits spent per day over the last `days` calendar days in the user's time zone: one query."""
    zone = user_zone(user)
    now = timezone.now()
    first = now.astimezone(zone).date() - timedelta(days=days - 1)
    rows = usage_daily(user=user, start=datetime.combine(first, time.min, tzinfo=zone), end=now, zone=zone)
    spent = [row["credits"] for row in rows]
    return {
        "days": rows,
        "credits": spent,
        "total": sum(spent),
        "peak": max(rows, key=lambda row: row["credits"]) if any(spent) else None,
        "first": rows[0]["date"],
        "last": rows[-1]["date"],
    }


# --- Runs: the list, one run's page, its cancel and retry --------------------------------------

RUNS_PER_PAGE = 25
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# What a JSON value shows before "Show all" (a node's inputs or outputs can be megabytes).
PREVIEW_CHARS = 1_500


class RunFilterForm(forms.Form):
    """The list's filters (a GET form): every one optional, a bad value a 400 naming the field."""

    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("Any status")), *Execution.Status.choices],
    )
    workflow = forms.ModelChoiceField(
        label=gettext_lazy("Workflow"),
        required=False,
        queryset=Workflow.objects.none(),
        empty_label=gettext_lazy("Any workflow"),
    )
    period = forms.ChoiceField(
        label=gettext_lazy("Period"),
        required=False,
        choices=[
            ("", gettext_lazy("Any time")),
            ("24h", gettext_lazy("Last 24 hours")),
            ("7d", gettext_lazy("Last 7 days")),
            ("30d", gettext_lazy("Last 30 days")),
        ],
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workflow"].queryset = Workflow.objects.visible_to(user).only("id", "name").order_by("name")

    def filter(self, runs: QuerySet[Execution]) -> QuerySet[Execution]:
        values = self.cleaned_data
        if values.get("status"):
            runs = runs.filter(status=values["status"])
        if values.get("workflow"):
            runs = runs.filter(workflow=values["workflow"])
        if values.get("period"):
            runs = runs.filter(created_at__gte=timezone.now() - PERIODS[values["period"]])
        return runs


def run_list_rows(user: Any) -> QuerySet[Execution]:
    return (
        Execution.objects.visible_to(user)
        .select_related("workflow")
        .only("id", "status", "cost", "created_at", "started_at", "finished_at", "workflow__id", "workflow__name")
        .order_by("-created_at", "-pk")
    )


@login_required
@require_safe
def execution_list(request: HttpRequest) -> HttpResponse:
    """`/runs/`: the user's runs, newest first, filtered by the GET form; htmx asks for the table alone."""
    form = RunFilterForm(request.GET or None, user=request.user)
    runs = run_list_rows(request.user)
    status = 200
    if form.is_bound and not form.is_valid():
        status, runs = 400, runs.none()
    elif form.is_bound:
        runs = form.filter(runs)
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page_obj": page,
        "runs": page.object_list,
        "filtered": form.is_bound and any(form.data.get(name) for name in form.fields),
    }
    template = "executions/_run_table.html" if request.headers.get("HX-Request") else "executions/run_list.html"
    return render(request, template, context, status=status)


def visible_run(user: Any, pk: Any) -> Execution:
    """The user's run with its workflow and version number (not its graph), or a 404."""
    runs = (
        Execution.objects.visible_to(user)
        .select_related("workflow", "version")
        .defer("version__graph", "version__input_schema", "version__output_schema", "workflow__graph")
    )
    return get_object_or_404(runs, pk=pk)


def node_attempts(execution: Execution) -> tuple[list[NodeExecution], int | None]:
    """
    Every node attempt of the run in start order, with their screenshots, and the run's event
    seq as of the same statement. Rows and seq come from one snapshot (a node's row commits with
    its event), so the page knows which node events its timeline already shows: the run's row
    was read one statement earlier and may be older.
    """
    seq = Execution.objects.filter(pk=OuterRef("execution_id")).values("last_event_seq")
    attempts = list(
        NodeExecution.objects.filter(execution=execution)
        .defer("state_delta")
        .annotate(seen_seq=Subquery(seq))
        .order_by("started_at", "pk")
        .prefetch_related(Prefetch("artifacts", queryset=RunArtifact.objects.order_by("pk")))
    )
    for attempt in attempts:
        attempt.shown_inputs = json_view(attempt.inputs)
        attempt.shown_outputs = json_view(attempt.outputs) if attempt.outputs is not None else None
        text = attempt.outputs.get("text") if isinstance(attempt.outputs, dict) else None
        attempt.llm_text = text if isinstance(text, str) and attempt.node_type in LLM_NODE_TYPES else ""
    return attempts, (attempts[0].seen_seq if attempts else None)


LLM_NODE_TYPES = frozenset({"llm", "agent"})


def json_view(value: Any) -> dict[str, Any]:
    """A JSON value as pretty text, with a preview when it is long."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    long = len(text) > PREVIEW_CHARS
    return {"text": text, "preview": text[:PREVIEW_CHARS] if long else text, "long": long, "length": len(text)}


@login_required
@require_safe
def execution_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    """`/runs/<id>/`: the run and its timeline as stored, then followed live (static/js/run.js)."""
    execution = visible_run(request.user, pk)
    attempts, nodes_seq = node_attempts(execution)
    context = {
        "run": execution,
        "attempts": attempts,
        "inputs": json_view(execution.inputs),
        "outputs": json_view(execution.outputs) if execution.outputs is not None else None,
        # The socket resumes after the run's seq as read with its row; node events up to the
        # timeline's seq are already drawn.
        "after_seq": execution.last_event_seq,
        "nodes_seq": max(nodes_seq or 0, execution.last_event_seq),
        "strings": run_page_strings(),
        "preview_chars": PREVIEW_CHARS,
    }
    return render(request, "executions/run_detail.html", context)


def run_page_strings() -> dict[str, Any]:
    """What static/js/run.js writes into the page, in the user's language."""
    statuses = {**dict(NodeExecution.Status.choices), **dict(Execution.Status.choices)}
    return {
        "statuses": {status: str(label) for status, label in statuses.items()},
        "live": {
            "connecting": _("Connecting…"),
            "live": _("Live"),
            "reconnecting": _("Reconnecting…"),
            "finished": _("Finished"),
            "closed": _("Disconnected: reload the page to follow the run."),
        },
        "attempt": _("attempt %(number)s"),
        "cost": _("Cost"),
        "show_all": _("Show all (%(count)s characters)"),
        "duration": {
            "ms": _("%(ms)d ms"),
            "s": _("%(s).1f s"),
            "min": _("%(min)d min %(s)d s"),
            "h": _("%(h)d h %(min)d min"),
        },
    }


@login_required
@require_POST
def execution_cancel(request: HttpRequest, pk: Any) -> HttpResponse:
    """Cancel the run (as `POST /api/v1/executions/<id>/cancel/` does) and come back to its page."""
    execution = visible_run(request.user, pk)
    if services.execution_cancel(execution=execution):
        messages.success(request, _("The run was cancelled."))
    else:
        messages.error(request, _("The run has already finished; only a queued or running run can be cancelled."))
    return redirect("executions:execution_detail", pk=execution.pk)


@login_required
@require_POST
def execution_retry(request: HttpRequest, pk: Any) -> HttpResponse:
    """Run the same version with the same inputs again (as the API's retry does) and go to the new run."""
    execution = visible_run(request.user, pk)
    try:
        retry = services.execution_retry(execution=execution, trigger=Execution.Trigger.UI)
    except services.ExecutionRefused as refused:
        messages.error(request, _("The run could not be retried: %(reason)s.") % {"reason": refused})
        return redirect("executions:execution_detail", pk=execution.pk)
    messages.success(request, _("A new run of the same version and inputs has started."))
    return redirect("executions:execution_detail", pk=retry.pk)
