"""Validation names every problem by node and field; an invalid draft cannot be published."""

from __future__ import annotations

import pytest

from apps.workflows.graph import GraphInvalid, derive_schemas, validate
from apps.workflows.models import Workflow, WorkflowVersion
from apps.workflows.services import OwnerResolver, workflow_publish
from tests.factories import UserFactory, graph, scripted

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return UserFactory(username="owner")


def problems(owner, nodes, edges) -> list[dict]:
    with pytest.raises(GraphInvalid) as caught:
        validate(graph(nodes, edges), OwnerResolver(owner))
    return caught.value.as_list()


IN = ("in", "input", {"name": "text"})
OUT = ("out", "output", {"name": "result"})


def test_a_valid_graph_derives_its_input_and_output_schemas(owner):
    plan = validate(
        graph(
            [
                ("in", "input", {"name": "text", "description": "what to shout"}),
                ("n", "input", {"name": "times", "schema": {"type": "integer"}, "default": 1}),
                ("shout", "template", {"template": "{{ t | upper }} x{{ k }}"}),
                OUT,
            ],
            [("in", "value", "shout", "t"), ("n", "value", "shout", "k"), ("shout", "text", "out", "value")],
        ),
        OwnerResolver(owner),
    )
    assert plan.input_schema == {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "what to shout"},
            "times": {"type": "integer", "default": 1},
        },
        "required": ["text"],
        "additionalProperties": False,
    }
    assert plan.output_schema == {"type": "object", "properties": {"result": {}}}
    assert derive_schemas(plan)[0] == plan.input_schema


def test_an_unknown_node_type_is_named(owner):
    found = problems(owner, [IN, ("x", "teleport", {})], [("in", "value", "x", "a")])
    assert (found[0]["node"], found[0]["field"]) == ("x", "type")
    assert "unknown node type 'teleport'" in found[0]["message"]


def test_a_config_not_matching_its_schema_names_the_field(owner):
    found = problems(owner, [IN, ("t", "template", {"template": 42}), OUT], [("in", "value", "t", "x")])
    assert found[0]["node"] == "t"
    assert found[0]["field"] == "config.template"
    assert "is not of type 'string'" in found[0]["message"]


def test_a_bad_expression_or_template_is_named(owner):
    found = problems(
        owner,
        [IN, ("c", "condition", {"expression": "text.__class__"}), ("t", "template", {"template": "{% if %}"})],
        [("in", "value", "c", "text"), ("in", "value", "t", "x")],
    )
    assert {(problem["node"], problem["field"]) for problem in found} == {
        ("c", "config.expression"),
        ("t", "config.template"),
    }


def test_edges_to_a_missing_node_or_pin_are_named(owner):
    found = problems(
        owner,
        [IN, ("t", "template", {"template": "{{ x }}"}), OUT],
        [
            ("in", "value", "t", "x"),
            ("in", "value", "ghost", "x"),
            ("t", "nope", "out", "value"),
            ("t", "text", "out", "value"),
        ],
    )
    messages = [problem["message"] for problem in found]
    assert any("'ghost' is not a node" in message for message in messages)
    assert any(problem["node"] == "t" and "has no output 'nope'" in problem["message"] for problem in found)


def test_a_required_input_left_unconnected_is_named(owner):
    found = problems(owner, [IN, ("t", "template", {"template": "{{ a }} {{ b }}"}), OUT], [("in", "value", "t", "a")])
    assert found == [{"node": "t", "field": "inputs.b", "message": "required input 'b' is not connected"}] + [
        problem for problem in found if problem["field"] != "inputs.b"
    ]


def test_a_cycle_without_a_loop_limit_is_refused_naming_its_nodes(owner):
    found = problems(
        owner,
        [IN, ("a", "template", {"template": "{{ x }}"}), ("b", "template", {"template": "{{ y }}"})],
        [("in", "value", "a", "x"), ("a", "text", "b", "y"), ("b", "text", "a", "x")],
    )
    assert "the cycle through a, b has no loop_limit" in found[0]["message"]


def test_more_than_one_entry_point_is_refused(owner):
    found = problems(
        owner,
        [IN, ("lonely", "template", {"template": "hi"}), OUT],
        [("in", "value", "out", "value")],
    )
    assert "more than one entry point: 'lonely'" in found[0]["message"]


def test_duplicate_ids_and_io_names_are_refused(owner):
    found = problems(owner, [IN, ("in", "input", {"name": "other"}), ("in2", "input", {"name": "text"})], [])
    messages = " ".join(problem["message"] for problem in found)
    assert "two nodes have this id" in messages
    assert "input name 'text' is also used by 'in'" in messages


def test_unknown_agents_credentials_and_workflows_of_another_user_are_refused(owner):
    from apps.agents.models import Agent

    stranger = UserFactory(username="stranger")
    theirs = Agent.objects.create(owner=stranger, name="theirs", model="m")
    found = problems(
        owner,
        [
            IN,
            ("ag", "agent", {"agent": theirs.pk, "prompt": "{{ x }}"}),
            ("l", "llm", {**scripted("hi"), "credential": 999, "prompt": "{{ x }}"}),
            ("s", "subworkflow", {"workflow": 12345}),
        ],
        [("in", "value", "ag", "x"), ("in", "value", "l", "x"), ("in", "value", "s", "x")],
    )
    fields = {(problem["node"], problem["field"]) for problem in found}
    assert {("ag", "config.agent"), ("l", "config.credential"), ("s", "config.workflow")} <= fields


def test_publishing_freezes_the_draft_as_the_next_version(owner):
    workflow = Workflow.objects.create(owner=owner, name="w", graph=graph([IN, OUT], [("in", "value", "out", "value")]))
    first = workflow_publish(workflow=workflow, actor=owner)
    workflow.graph = graph(
        [IN, ("t", "template", {"template": "{{ x }}!"}), OUT],
        [("in", "value", "t", "x"), ("t", "text", "out", "value")],
    )
    workflow.save()
    second = workflow_publish(workflow=workflow, actor=owner)
    assert (first.number, second.number) == (1, 2)
    first.refresh_from_db()
    assert len(first.graph["nodes"]) == 2  # the published version did not follow the draft


def test_an_invalid_draft_cannot_be_published_and_nothing_is_written(owner):
    workflow = Workflow.objects.create(owner=owner, name="w", graph=graph([("x", "teleport", {})], []))
    with pytest.raises(GraphInvalid, match="teleport"):
        workflow_publish(workflow=workflow, actor=owner)
    assert not WorkflowVersion.objects.exists()
    workflow.refresh_from_db()
    assert workflow.latest_version_number == 0


def test_a_malformed_graph_envelope_is_refused(owner):
    with pytest.raises(GraphInvalid, match="nodes"):
        validate({"nodes": "lots", "edges": []}, OwnerResolver(owner))
