"""Every node type, run through the real engine (LLM nodes on the scripted provider)."""

from __future__ import annotations

from apps.agents.models import Agent, Credential
from apps.executions.models import Execution
from tests.executions.conftest import node_statuses
from tests.factories import published, scripted
from tests.support.http_server import Answer, ScriptedHTTPServer

IN = ("in", "input", {"name": "text"})


def out(name: str = "result") -> tuple:
    return (name, "output", {"name": name})


def single(owner, node: tuple, pin: str, output_pin: str = "text"):
    """input -> node -> output."""
    return published(
        owner, [IN, node, out()], [("in", "value", node[0], pin), (node[0], output_pin, "result", "value")]
    )


def test_input_defaults_and_outputs(owner, run):
    version = published(
        owner,
        [("in", "input", {"name": "n", "schema": {"type": "integer"}, "default": 7}), out()],
        [("in", "value", "result", "value")],
    )
    execution = run(version, {})
    assert execution.inputs == {"n": 7}
    assert execution.outputs == {"result": 7}


def test_template_renders_and_its_sandbox_refuses_python_internals(owner, run):
    assert run(single(owner, ("t", "template", {"template": "{{ x | upper }}!"}), "x"), {"text": "hi"}).outputs == {
        "result": "HI!"
    }
    attack = run(single(owner, ("t", "template", {"template": "{{ x.__class__.__mro__ }}"}), "x"), {"text": "hi"})
    assert attack.status == Execution.Status.FAILED
    assert attack.error_code == "template_error"


def test_a_runaway_template_loop_is_stopped(owner, run):
    node = (
        "t",
        "template",
        {"template": "{% for i in range(90000) %}{% for j in range(90000) %}.{% endfor %}{% endfor %}{{ x }}"},
    )
    execution = run(single(owner, node, "x"), {"text": "x"})
    assert execution.status == Execution.Status.FAILED
    assert "loops more than" in execution.error_message


def test_llm_streams_a_scripted_reply_and_records_usage(owner, run):
    node = ("l", "llm", {**scripted("Echo: {input}"), "system_prompt": "Be brief.", "prompt": "Say {{ x }}"})
    execution = run(single(owner, node, "x"), {"text": "hello there"})
    assert execution.outputs == {"result": "Echo: Say hello there"}
    record = execution.node_executions.get(node_id="l")
    assert record.usage == {"provider": "scripted", "model": "scripted-1", "input_tokens": 5, "output_tokens": 4}


def test_llm_structured_output_is_validated_against_its_schema(owner, run):
    schema = {"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]}
    good = ("l", "llm", {**scripted('{"score": 0.9}'), "prompt": "Rate {{ x }}", "output_schema": schema})
    assert run(single(owner, good, "x", "data"), {"text": "a"}).outputs == {"result": {"score": 0.9}}
    bad = ("l", "llm", {**scripted('{"grade": "A"}'), "prompt": "Rate {{ x }}", "output_schema": schema})
    failed = run(single(owner, bad, "x", "data"), {"text": "a"})
    assert failed.status == Execution.Status.FAILED
    assert failed.error_code == "invalid_structured_output"


def test_an_agent_calls_its_tool_and_answers(owner, run):
    agent = Agent.objects.create(
        owner=owner,
        name="math",
        provider="scripted",
        model="scripted-1",
        tools=["calculator"],
        parameters={
            "replies": [
                {"tool_calls": [{"name": "calculator", "args": {"expression": "6 * 7"}}]},
                "The answer is 42.",
            ]
        },
    )
    execution = run(
        single(owner, ("a", "agent", {"agent": agent.pk, "prompt": "What is {{ q }}?"}), "q"), {"text": "6*7"}
    )
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert execution.outputs == {"result": "The answer is 42."}
    usage = execution.node_executions.get(node_id="a").usage
    assert usage["tool_calls"] == 1
    assert usage["output_tokens"] > 0


def test_an_agent_that_never_stops_hits_its_iteration_limit(owner, run):
    agent = Agent.objects.create(
        owner=owner,
        name="loop",
        model="scripted-1",
        tools=["calculator"],
        max_iterations=2,
        parameters={"replies": [{"tool_calls": [{"name": "calculator", "args": {"expression": "1+1"}}]}]},
    )
    execution = run(single(owner, ("a", "agent", {"agent": agent.pk, "prompt": "{{ q }}"}), "q"), {"text": "go"})
    assert execution.error_code == "agent_iteration_limit"


def test_http_request_sends_templated_requests_with_a_header_credential(owner, run, http_server):
    http_server.route("/items", Answer(201, {"id": 5}))
    credential = Credential(owner=owner, name="api", kind="http_header", header_name="X-Token")
    credential.set_secret("token-abcdef123456")
    credential.save()
    node = (
        "h",
        "http_request",
        {
            "method": "POST",
            "url": http_server.url + "/items?q={{ x }}",
            "headers": {"Content-Type": "application/json"},
            "body": '{"name": "{{ x }}"}',
            "credential": credential.pk,
        },
    )
    execution = run(single(owner, node, "x", "body"), {"text": "pen"})
    assert execution.outputs == {"result": {"id": 5}}
    sent = http_server.requests[0]
    assert (sent["method"], sent["path"], sent["body"]) == ("POST", "/items?q=pen", '{"name": "pen"}')
    assert sent["headers"]["X-Token"] == "token-abcdef123456"
    stored = str(list(execution.events.values_list("payload", flat=True))) + str(
        list(execution.node_executions.values_list("inputs", "outputs"))
    )
    assert "token-abcdef123456" not in stored


def test_http_request_drops_its_credential_header_when_a_redirect_leaves_the_origin(
    owner, run, http_server, egress_allow
):
    other = ScriptedHTTPServer()  # another port: another origin
    try:
        egress_allow(other.netloc)
        other.route("/landing", Answer(200, {"ok": True}))
        http_server.route("/start", Answer(302, "", headers={"Location": f"{other.url}/landing?code=abc"}))
        # A header name no heuristic would call secret: only the node's marking protects it.
        credential = Credential(owner=owner, name="odd", kind="http_header", header_name="X-Partner")
        credential.set_secret("partner-value-123456")
        credential.save()
        node = ("h", "http_request", {"url": http_server.url + "/start?q={{ x }}", "credential": credential.pk})
        execution = run(single(owner, node, "x", "body"), {"text": "go"})
        assert execution.outputs == {"result": {"ok": True}}
        assert http_server.requests[0]["headers"]["X-Partner"] == "partner-value-123456"
        assert "X-Partner" not in other.requests[0]["headers"]
    finally:
        other.close()


def test_http_request_errors_name_the_address_without_path_or_query(owner, run, http_server):
    http_server.route("/private", Answer(403, "no"))
    node = ("h", "http_request", {"url": http_server.url + "/private?token={{ x }}"})
    execution = run(single(owner, node, "x", "body"), {"text": "s3cr3t-token"})
    assert execution.error_code == "http_status"
    assert execution.error_message.startswith(f"{http_server.url} answered 403")
    assert "s3cr3t-token" not in execution.error_message
    assert "/private" not in execution.error_message


def test_http_request_refuses_other_schemes(owner, run):
    execution = run(
        single(owner, ("h", "http_request", {"url": "file:///etc/{{ x }}"}), "x", "body"), {"text": "passwd"}
    )
    assert execution.error_code == "egress_refused"


def test_a_subworkflow_runs_as_a_child_run(owner, run):
    child_version = published(
        owner,
        [
            ("word", "input", {"name": "word"}),
            ("t", "template", {"template": "<{{ w }}>"}),
            ("wrapped", "output", {"name": "wrapped"}),
        ],
        [("word", "value", "t", "w"), ("t", "text", "wrapped", "value")],
        name="child",
    )
    parent_version = published(
        owner,
        [IN, ("sub", "subworkflow", {"workflow": child_version.workflow_id}), out()],
        [("in", "value", "sub", "word"), ("sub", "wrapped", "result", "value")],
        name="parent",
    )
    execution = run(parent_version, {"text": "x"})
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert execution.outputs == {"result": "<x>"}
    child = execution.children.get()
    assert (child.trigger, child.status, child.parent_node_id) == ("subworkflow", "succeeded", "sub")
    assert node_statuses(child) == {"word": ["succeeded"], "t": ["succeeded"], "wrapped": ["succeeded"]}
