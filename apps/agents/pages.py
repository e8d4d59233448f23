"""
Pages of agents for end users: the list, the create and edit forms, deleting, the test chat.

Every query goes through `Agent.objects.visible_to(user)` (another user's agent is a 404), the
form calls the same services as the API, and the chat's streaming endpoint is in chat.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from apps.agents.forms import PROVIDER_LABELS, AgentForm
from apps.agents.models import Agent
from apps.billing import services as billing


def agents_listed(user: Any) -> QuerySet[Agent]:
    """The user's agents with their credential's name: one query, whatever their number."""
    return (
        Agent.objects.visible_to(user)
        .select_related("credential")
        .only(
            "id",
            "name",
            "description",
            "provider",
            "model",
            "tools",
            "updated_at",
            "credential__id",
            "credential__name",
        )
        .order_by("name", "pk")
    )


@login_required
@require_safe
def agent_list(request: HttpRequest) -> HttpResponse:
    agents = list(agents_listed(request.user))
    for agent in agents:
        agent.provider_label = PROVIDER_LABELS.get(agent.provider, agent.provider)
    return render(request, "agents/agent_list.html", {"agents": agents})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def agent_create(request: HttpRequest) -> HttpResponse:
    form = AgentForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid() and (agent := form.save()) is not None:
        messages.success(request, _("Agent “%(name)s” created. Try it in the chat below.") % {"name": agent.name})
        return redirect("agents:agent_chat", pk=agent.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "agents/agent_form.html", {"form": form, "agent": None}, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def agent_edit(request: HttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
    form = AgentForm(request.POST or None, user=request.user, agent=agent)
    if request.method == "POST" and form.is_valid() and (saved := form.save()) is not None:
        messages.success(request, _("Agent “%(name)s” saved.") % {"name": saved.name})
        return redirect("agents:agent_edit", pk=saved.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "agents/agent_form.html", {"form": form, "agent": agent}, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def agent_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm; POST deletes (workflows that name the agent fail at their agent node)."""
    agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
    if request.method == "POST":
        name = agent.name
        agent.delete()
        messages.success(request, _("Agent “%(name)s” deleted.") % {"name": name})
        return redirect("agents:agent_list")
    return render(request, "agents/agent_confirm_delete.html", {"agent": agent})


@login_required
@require_safe
def agent_chat(request: HttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.visible_to(request.user).select_related("credential"), pk=pk)
    context = {
        "agent": agent,
        "provider_label": PROVIDER_LABELS.get(agent.provider, agent.provider),
        "balance": billing.balance_of(request.user),
    }
    return render(request, "agents/chat.html", context)
