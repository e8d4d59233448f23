"""
Pages of workflows for end users: the list, creating one, the visual builder, and the run form.

The builder is a JavaScript module (static/js/builder.js) that saves and publishes through the
REST API; the server renders its first paint (the draft graph and each node's pins) so it needs no
extra fetch for the graph. Everything is scoped with `Workflow.objects.visible_to(user)`: another
user's workflow is a 404.

Runs are a later app than workflows (executions stands on workflows): the list's run figures and
the run form reach it through local imports, as the admin's "run" action does, so importing the
workflows app never loads the engine.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.workflows import graph as graphs
from apps.workflows import services
from apps.workflows.forms import RunForm, WorkflowCreateForm
from apps.workflows.models import Workflow, WorkflowVersion
from apps.workflows.nodes import REGISTRY
from apps.workflows.nodes.base import COMMON_CONFIG_PROPERTIES
from apps.workflows.services import OwnerResolver

# The service refuses an empty graph ("the graph has no nodes"): a new draft starts with one input.
STARTER_GRAPH = {
    "nodes": [{"id": "input_1", "type": "input", "config": {"name": "input"}, "position": {"x": 40, "y": 60}}],
    "edges": [],
}


# --- The list --------------------------------------------------------------------------------


@login_required
@require_safe
def workflow_list(request: HttpRequest) -> HttpResponse:
    from apps.executions.models import Execution

    workflows = list(workflows_listed(request.user))
    labels = dict(Execution.Status.choices)
    for workflow in workflows:
        workflow.last_run_label = labels.get(workflow.last_run_status, workflow.last_run_status)
    return render(request, "workflows/workflow_list.html", {"workflows": workflows})


def workflows_listed(user: Any) -> QuerySet[Workflow]:
    """The user's workflows with their latest version and run figures: one query whatever their number."""
    from apps.executions.models import Execution

    runs = Execution.objects.filter(workflow=OuterRef("pk")).order_by("-created_at", "-pk")
    run_count = (
        Execution.objects.filter(workflow=OuterRef("pk"))
        .order_by()
        .values("workflow")
        .annotate(total=Count("pk"))
        .values("total")
    )
    published = WorkflowVersion.objects.filter(workflow=OuterRef("pk"), number=OuterRef("latest_version_number"))
    return (
        Workflow.objects.visible_to(user)
        .annotate(
            run_count=Subquery(run_count),
            last_run_id=Subquery(runs.values("pk")[:1]),
            last_run_status=Subquery(runs.values("status")[:1]),
            last_run_at=Subquery(runs.values("created_at")[:1]),
            published_at=Subquery(published.values("created_at")[:1]),
        )
        .only("id", "name", "description", "latest_version_number", "updated_at")
        .order_by("-updated_at", "-pk")
    )


# --- Creating --------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def workflow_create(request: HttpRequest) -> HttpResponse:
    form = WorkflowCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workflow = services.workflow_create(
            owner=request.user,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            graph=copy.deepcopy(STARTER_GRAPH),
        )
        messages.success(request, _("Workflow “%(name)s” created. Add steps, then publish it.") % {"name": workflow})
        return redirect("workflows:workflow_edit", workflow.pk)
    return render(request, "workflows/workflow_create.html", {"form": form}, status=400 if form.errors else 200)


# --- The builder -----------------------------------------------------------------------------


@login_required
@require_safe
def workflow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow.objects.visible_to(request.user), pk=pk)
    resolver = OwnerResolver(request.user)
    nodes = workflow.graph.get("nodes", []) if isinstance(workflow.graph, dict) else []
    context = {
        "workflow": workflow,
        "builder": {
            "workflow": {"id": workflow.pk, "name": workflow.name, "latest_version": workflow.latest_version_number},
            "graph": workflow.graph,
            "pins": pins_of(nodes, resolver),
            "urls": {
                "workflow": reverse("workflow-detail", args=[workflow.pk]),
                "publish": reverse("workflow-publish", args=[workflow.pk]),
                "versions": reverse("workflow-version-list", args=[workflow.pk]),
                "node_types": reverse("node-type-list"),
                "pins": reverse("workflows:workflow_pins", args=[workflow.pk]),
                "run": reverse("workflows:workflow_run", args=[workflow.pk]),
            },
            "common_keys": list(COMMON_CONFIG_PROPERTIES),
            "strings": builder_strings(),
        },
    }
    return render(request, "workflows/workflow_builder.html", context)


@login_required
@require_POST
def workflow_pins(request: HttpRequest, pk: int) -> HttpResponse:
    """
    The pins of the builder's nodes for their current config: a template's variables, a condition's
    names and a sub-workflow's inputs are pins, so they change as the settings are typed.
    Body: `{"nodes": [{"id", "type", "config"}]}`; answer: `{"pins": {node id: {"inputs", "outputs"}}}`.
    """
    get_object_or_404(Workflow.objects.visible_to(request.user), pk=pk)
    try:
        nodes = json.loads(request.body or b"{}").get("nodes")
    except (ValueError, AttributeError):
        nodes = None
    if not isinstance(nodes, list) or len(nodes) > graphs.MAX_NODES:
        message = _("Send {“nodes”: [...]} with at most %(count)d nodes.") % {"count": graphs.MAX_NODES}
        return HttpResponseBadRequest(message)
    return JsonResponse({"pins": pins_of(nodes, OwnerResolver(request.user))})


def pins_of(nodes: list, resolver: OwnerResolver) -> dict[str, dict]:
    pins = {}
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("id"), str) and node.get("type") in REGISTRY:
            pins[node["id"]] = node_pins(node, resolver)
    return pins


def node_pins(node: dict, resolver: OwnerResolver) -> dict[str, list[dict]]:
    node_type = REGISTRY[node["type"]]
    config = node.get("config") if isinstance(node.get("config"), dict) else {}
    try:
        inputs, outputs = node_type.pins_for(config, resolver)
    except (TypeError, ValueError, KeyError, AttributeError):
        # A half-typed config: the type's own pins until it makes sense (validation says what is wrong).
        inputs, outputs = node_type.inputs_schema, node_type.outputs_schema
    required = set(inputs.get("required", []))
    return {
        "inputs": [{"name": name, "required": name in required} for name in inputs.get("properties", {})],
        "outputs": [{"name": name, "required": False} for name in outputs.get("properties", {})],
    }


def builder_strings() -> dict[str, str]:
    """Every text builder.js shows, translated here (the module has no catalogue of its own)."""
    return {
        "saved": _("All changes saved"),
        "unsaved": _("Unsaved changes"),
        "restored": _("Unsaved changes from your last visit were restored."),
        "saving": _("Saving…"),
        "publishing": _("Publishing…"),
        "not_saved": _("Not saved: fix the problems listed below."),
        "save_failed": _("The draft could not be saved: %(message)s"),
        "published": _("Version %(number)s published."),
        "draft_of": _("Draft · latest published version: %(number)s"),
        "publish_failed": _("Not published: fix the problems listed below."),
        "problems": _("Problems"),
        "no_problems": _("No problems found yet. Saving checks the whole workflow."),
        "graph_problem": _("Workflow"),
        "delete_node": _("Delete node %(name)s"),
        "delete_edge": _("Delete connection from %(source)s to %(target)s"),
        "input_port": _("Input %(pin)s of %(name)s"),
        "output_port": _("Output %(pin)s of %(name)s: drag to an input, or press to choose it then press an input"),
        "output_chosen": _("Output %(pin)s of %(name)s chosen: now press an input to connect it."),
        "connected": _("Connected %(source)s to %(target)s."),
        "add_node": _("Add %(type)s node"),
        "added": _("Added %(name)s."),
        "removed": _("Removed %(name)s."),
        "select_node": _("Select a node on the canvas to edit its settings."),
        "settings_of": _("Settings of %(name)s"),
        "more_settings": _("More settings"),
        "required": _("required"),
        "json_invalid": _("Not valid JSON: %(message)s"),
        "json_help": _("JSON"),
        "node_id": _("Node id: %(id)s"),
        "no_versions": _("Not published yet. Publish to freeze the draft as version 1."),
        "version": _("Version %(number)s"),
        "versions_failed": _("The versions could not be loaded."),
        "palette_failed": _("The node types could not be loaded: reload the page."),
        "leave": _("You have unsaved changes."),
        "empty_canvas": _("Drag a node type here from the palette, or press one to add it."),
        "yes": _("Yes"),
        "no": _("No"),
        "none": _("—"),
        # The palette's groups: the node types' categories.
        "category_ai": _("AI"),
        "category_integration": _("Integrations"),
        "category_io": _("Inputs and outputs"),
        "category_logic": _("Logic"),
        "category_text": _("Text"),
    }


# --- Running ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def workflow_run(request: HttpRequest, pk: int) -> HttpResponse:
    """A run form generated from the latest published version's input schema; POST queues a run."""
    from apps.executions import services as runs
    from apps.executions.models import Execution

    workflow = get_object_or_404(Workflow.objects.visible_to(request.user), pk=pk)
    version = WorkflowVersion.objects.filter(workflow=workflow).latest_first().first()
    if version is None:
        return render(request, "workflows/workflow_run.html", {"workflow": workflow, "version": None})
    form = RunForm(request.POST or None, input_schema=version.input_schema)
    if request.method == "POST" and form.is_valid():
        try:
            # One transaction: a refused start also drops its pending run, so a refusal changes nothing.
            with transaction.atomic():
                execution = runs.execution_run(
                    version=version, inputs=form.inputs(), owner=request.user, trigger=Execution.Trigger.UI
                )
        except runs.ExecutionRefused as refused:
            refusal_as_form_errors(form, refused)
        else:
            messages.success(request, _("Run of version %(number)s queued.") % {"number": version.number})
            return redirect(reverse("executions:execution_detail", args=[execution.pk]))
    context = {"workflow": workflow, "version": version, "form": form}
    return render(request, "workflows/workflow_run.html", context, status=400 if form.errors else 200)


def refusal_as_form_errors(form: RunForm, refused: Exception) -> None:
    """The API's refusals on the form: an input that does not fit on its field, the plan's answer above all."""
    problems = getattr(refused, "errors", None) or [{"field": None, "message": str(refused)}]
    for problem in problems:
        name = (problem.get("field") or "").split(".")[0]
        form.add_error(name if name in form.fields else None, problem["message"])
