"""
The dataflow rules of a run, as pure functions over a JSON state (no database, no I/O).

State, carried by LangGraph between supersteps and saved with each node's record:
    edges:    {edge_id: {"gen": step, "dead": bool, "value": any}}  what each edge last carried
    last_run: {node_id: step}                                     when a node last ran or was skipped
    visits:   {node_id: count}                                    how often it ran
    results:  {output_name: value}                                the run's outputs so far

A node runs when every connected input has a value and at least one value is new since its
last run. An input whose edges were all on branches not taken is dead: a node with a dead
input is skipped, and so are the nodes after it. Edges that close a loop are not waited for
on the first pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from apps.workflows.graph import Plan

WAIT: Literal["wait"] = "wait"
SKIP: Literal["skip"] = "skip"
RUN: Literal["run"] = "run"


@dataclass
class Decision:
    kind: Literal["wait", "skip", "run"]
    inputs: dict[str, Any] = field(default_factory=dict)


def empty_state() -> dict:
    return {"edges": {}, "last_run": {}, "visits": {}, "results": {}}


def merge(left: dict | None, right: dict | None) -> dict:
    """LangGraph reducer: parallel nodes of one superstep write disjoint keys."""
    return {**(left or {}), **(right or {})}


def fold(state: dict, delta: dict) -> dict:
    """Apply one node's saved delta (for resuming a run from its records)."""
    return {key: merge(state.get(key), delta.get(key)) for key in ("edges", "last_run", "visits", "results")}


def decide(plan: Plan, node_id: str, state: dict, run_inputs: dict) -> Decision:
    last_run = state["last_run"].get(node_id, -1)
    pins = plan.incoming.get(node_id, {})
    if not pins:
        if state["visits"].get(node_id, 0):
            return Decision(WAIT)
        return Decision(RUN, _entry_inputs(plan, node_id, run_inputs))
    inputs: dict[str, Any] = {}
    fresh = False
    dead = False
    for pin, edge_ids in pins.items():
        carried = [state["edges"].get(edge_id) for edge_id in edge_ids]
        live = [edge for edge in carried if edge is not None and not edge["dead"]]
        if live:
            newest = max(live, key=lambda edge: edge["gen"])
            inputs[pin] = newest["value"]
            # A value from the superstep the node last ran in came from a sibling it did not see.
            fresh = fresh or any(edge["gen"] >= last_run for edge in live)
            continue
        forward = [edge_id for edge_id in edge_ids if edge_id not in plan.back_edges]
        if not forward:
            continue  # only loop-back edges, not yet carried: not waited for
        if all((state["edges"].get(e) or {}).get("dead") for e in forward):
            dead = True
            continue
        return Decision(WAIT)
    if dead:
        return Decision(SKIP) if last_run < 0 else Decision(WAIT)
    if not fresh:
        return Decision(WAIT)
    return Decision(RUN, inputs)


def _entry_inputs(plan: Plan, node_id: str, run_inputs: dict) -> dict:
    if plan.node_type(node_id) == "input":
        config = plan.config(node_id)
        return {"value": run_inputs.get(config["name"], config.get("default"))}
    return {}


def run_delta(plan: Plan, node_id: str, step: int, state: dict, outputs: dict) -> dict:
    """What running `node_id` at `step` changed: fired pins carry values, the others are dead."""
    edges = {}
    for edge_id in plan.outgoing.get(node_id, []):
        edge = plan.edges[edge_id]
        if edge.source_output in outputs:
            edges[edge_id] = {"gen": step, "dead": False, "value": outputs[edge.source_output]}
        else:
            edges[edge_id] = {"gen": step, "dead": True, "value": None}
    delta = {
        "edges": edges,
        "last_run": {node_id: step},
        "visits": {node_id: state["visits"].get(node_id, 0) + 1},
        "results": {},
    }
    if plan.node_type(node_id) == "output":
        delta["results"] = {plan.config(node_id)["name"]: outputs.get("value")}
    return delta


def skip_delta(plan: Plan, node_id: str, step: int) -> dict:
    edges = {edge_id: {"gen": step, "dead": True, "value": None} for edge_id in plan.outgoing.get(node_id, [])}
    return {"edges": edges, "last_run": {node_id: step}, "visits": {}, "results": {}}
