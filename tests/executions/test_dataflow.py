"""Branching, joins, parallel branches and bounded loops, run by the real engine."""

from __future__ import annotations

from apps.executions.models import Execution
from tests.executions.conftest import node_statuses
from tests.factories import published, scripted

TEXT_INPUT = ("text", "input", {"name": "text"})
NUMBER_INPUT = ("n", "input", {"name": "n", "schema": {"type": "integer"}})


def branching(owner):
    return published(
        owner,
        [
            NUMBER_INPUT,
            ("check", "condition", {"expression": "n > 10"}),
            ("big", "template", {"template": "big {{ n }}"}),
            ("small", "template", {"template": "small {{ n }}"}),
            ("after_small", "template", {"template": "after {{ t }}"}),
            ("answer", "output", {"name": "answer"}),
        ],
        [
            ("n", "value", "check", "n"),
            ("n", "value", "check", "value"),
            ("check", "true", "big", "n"),
            ("check", "false", "small", "n"),
            ("small", "text", "after_small", "t"),
            ("big", "text", "answer", "value"),
            ("after_small", "text", "answer", "value"),
        ],
    )


def test_a_condition_takes_one_branch_and_skips_the_other_with_its_descendants(owner, run):
    execution = run(branching(owner), {"n": 42})
    assert execution.status == Execution.Status.SUCCEEDED
    assert execution.outputs == {"answer": "big 42"}
    statuses = node_statuses(execution)
    assert statuses["small"] == ["skipped"]
    assert statuses["after_small"] == ["skipped"]
    assert statuses["answer"] == ["succeeded"]


def test_the_other_branch_joins_the_same_output(owner, run):
    execution = run(branching(owner), {"n": 3})
    assert execution.outputs == {"answer": "after small 3"}
    assert node_statuses(execution)["big"] == ["skipped"]


def test_a_join_waits_for_both_parallel_branches(owner, run):
    version = published(
        owner,
        [
            TEXT_INPUT,
            ("fast", "template", {"template": "fast:{{ t }}"}),
            ("slow1", "template", {"template": "s1:{{ t }}"}),
            ("slow2", "template", {"template": "s2:{{ t }}"}),
            ("join", "template", {"template": "{{ a }}+{{ b }}"}),
            ("out", "output", {"name": "joined"}),
        ],
        [
            ("text", "value", "fast", "t"),
            ("text", "value", "slow1", "t"),
            ("slow1", "text", "slow2", "t"),
            ("fast", "text", "join", "a"),
            ("slow2", "text", "join", "b"),
            ("join", "text", "out", "value"),
        ],
    )
    execution = run(version, {"text": "x"})
    assert execution.outputs == {"joined": "fast:x+s2:s1:x"}
    assert node_statuses(execution)["join"] == ["succeeded"]  # once, not once per branch
    steps = {r.node_id: r.step for r in execution.node_executions.all()}
    assert steps["fast"] == steps["slow1"]  # the two branches ran in the same superstep


def counting_loop(owner, *, loop_limit: int, stop_at: int):
    """n -> inc -> done?; on false back to inc (a loop), on true to the output."""
    return published(
        owner,
        [
            NUMBER_INPUT,
            ("inc", "template", {"template": "{{ (n | int) + 1 }}", "loop_limit": loop_limit}),
            ("done", "condition", {"expression": f"int(n) >= {stop_at}"}),
            ("out", "output", {"name": "final"}),
        ],
        [
            ("n", "value", "inc", "n"),
            ("inc", "text", "done", "n"),
            ("inc", "text", "done", "value"),
            ("done", "false", "inc", "n"),
            ("done", "true", "out", "value"),
        ],
    )


def test_a_bounded_loop_runs_until_its_condition_holds(owner, run):
    version = counting_loop(owner, loop_limit=10, stop_at=5)
    execution = run(version, {"n": 1})
    assert execution.status == Execution.Status.SUCCEEDED, execution.error_message
    assert execution.outputs == {"final": "5"}
    assert node_statuses(execution)["inc"] == ["succeeded"] * 4


def test_a_loop_past_its_limit_fails_naming_the_node(owner, run):
    version = counting_loop(owner, loop_limit=3, stop_at=100)
    execution = run(version, {"n": 1})
    assert execution.status == Execution.Status.FAILED
    assert execution.error_code == "loop_limit_exceeded"
    assert "'inc'" in execution.error_message
    assert node_statuses(execution)["inc"] == ["succeeded"] * 3


def test_events_have_strictly_increasing_seq_and_end_with_the_status(owner, run):
    execution = run(branching(owner), {"n": 42})
    seqs = list(execution.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    last = execution.events.order_by("-seq").first()
    assert (last.type, last.payload["status"]) == ("execution.status", "succeeded")
    types = set(execution.events.values_list("type", flat=True))
    assert {"node.started", "node.completed", "node.skipped"} <= types


def test_each_pass_of_a_loop_is_a_first_attempt(owner, run):
    version = counting_loop(owner, loop_limit=10, stop_at=3)
    execution = run(version, {"n": 1})
    assert list(execution.node_executions.filter(node_id="inc").values_list("attempt", flat=True)) == [1, 1]


def test_a_failing_node_stops_its_parallel_siblings_and_says_why(owner, run):
    slow = ("slow", "llm", {**scripted("a b c d e f", chunk_size=1, delay_ms=200), "prompt": "{{ x }}"})
    version = published(
        owner,
        [TEXT_INPUT, slow, ("bad", "template", {"template": "{{ x.__class__ }}"}), ("o", "output", {"name": "o"})],
        [("text", "value", "slow", "x"), ("text", "value", "bad", "x"), ("slow", "text", "o", "value")],
    )
    execution = run(version, {"text": "go"})
    assert (execution.status, execution.error_code) == ("failed", "template_error")
    stopped = execution.node_executions.get(node_id="slow")
    assert (stopped.status, stopped.error_code) == ("cancelled", "stopped")
    assert "node 'bad' failed" in stopped.error_message
    assert execution.events.filter(type="node.failed", node_id="bad").exists()
