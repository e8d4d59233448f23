"""
The graph format, its validation, and the plan the engine runs.

    {"nodes": [{"id", "type", "config", "position"}],
     "edges": [{"source", "source_output", "target", "target_input"}]}

Validation collects every problem, each naming its node and field, so the builder can show
them all at once. A valid graph becomes a Plan: the indexes the engine's dataflow needs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from apps.workflows.nodes import REGISTRY
from apps.workflows.nodes.base import Resolver

NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NODES = 500

ENVELOPE_SCHEMA = {
    "type": "object",
    "properties": {
        "nodes": {
            "type": "array",
            "maxItems": MAX_NODES,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "config": {"type": "object"},
                    "position": {"type": "object"},
                },
                "required": ["id", "type"],
            },
        },
        "edges": {
            "type": "array",
            "maxItems": MAX_NODES * 4,
            "items": {
                "type": "object",
                "properties": {
                    "source": {"type": "string"},
                    "source_output": {"type": "string"},
                    "target": {"type": "string"},
                    "target_input": {"type": "string"},
                },
                "required": ["source", "source_output", "target", "target_input"],
            },
        },
    },
    "required": ["nodes", "edges"],
}


@dataclass(frozen=True)
class GraphProblem:
    message: str
    node: str | None = None
    field: str | None = None

    def as_dict(self) -> dict:
        return {"node": self.node, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = f"node {self.node!r}" if self.node else "graph"
        if self.field:
            where += f", {self.field}"
        return f"{where}: {self.message}"


class GraphInvalid(ValueError):
    def __init__(self, problems: list[GraphProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems[:10]))

    def as_list(self) -> list[dict]:
        return [problem.as_dict() for problem in self.problems]


@dataclass(frozen=True)
class Edge:
    id: str
    source: str
    source_output: str
    target: str
    target_input: str


@dataclass
class Plan:
    """Indexes over a valid graph, for the engine."""

    nodes: dict[str, dict]
    edges: dict[str, Edge]
    incoming: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # node -> pin -> edge ids
    outgoing: dict[str, list[str]] = field(default_factory=dict)  # node -> edge ids
    back_edges: frozenset[str] = frozenset()
    input_schema: dict = field(default_factory=dict)
    output_schema: dict = field(default_factory=dict)

    def node_type(self, node_id: str) -> str:
        return self.nodes[node_id]["type"]

    def config(self, node_id: str) -> dict:
        return self.nodes[node_id].get("config") or {}

    def entry_nodes(self) -> list[str]:
        return [node_id for node_id in self.nodes if not self.incoming.get(node_id)]

    def successors(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(self.edges[edge_id].target for edge_id in self.outgoing.get(node_id, [])))

    def in_cycle(self, node_id: str) -> bool:
        return any(self.edges[e].target == node_id for e in self.back_edges) or any(
            self.edges[e].source == node_id for e in self.back_edges
        )


def validate(graph: Any, resolver: Resolver) -> Plan:
    """Check a graph completely; raise GraphInvalid listing every problem, or return its Plan."""
    problems: list[GraphProblem] = []
    try:
        jsonschema.validate(graph, ENVELOPE_SCHEMA)
    except jsonschema.ValidationError as exc:
        path = "/".join(str(part) for part in exc.absolute_path)
        raise GraphInvalid([GraphProblem(f"{path or 'graph'}: {exc.message}")]) from exc

    nodes: dict[str, dict] = {}
    pins: dict[str, tuple[dict, dict]] = {}
    for node in graph["nodes"]:
        problems += _check_node(node, nodes, pins, resolver)
    edges = _check_edges(graph["edges"], nodes, pins, problems)
    plan = _index(nodes, edges)
    problems += _check_required_inputs(plan, pins)
    problems += _check_entry_points(plan)
    problems += _check_cycles(plan)
    problems += _check_io_names(plan)
    if problems:
        raise GraphInvalid(problems)
    plan.back_edges = frozenset(_back_edges(plan))
    plan.input_schema, plan.output_schema = derive_schemas(plan)
    return plan


def _check_node(node: dict, nodes: dict, pins: dict, resolver: Resolver) -> list[GraphProblem]:
    node_id = node["id"]
    if not NODE_ID.match(node_id):
        return [GraphProblem("ids are 1 to 64 letters, digits, '-' or '_'", node_id, "id")]
    if node_id in nodes:
        return [GraphProblem("two nodes have this id", node_id, "id")]
    node_type = REGISTRY.get(node["type"])
    nodes[node_id] = {"id": node_id, "type": node["type"], "config": node.get("config") or {}}
    if node_type is None:
        known = ", ".join(sorted(REGISTRY))
        return [GraphProblem(f"unknown node type {node['type']!r}; known types: {known}", node_id, "type")]
    config = nodes[node_id]["config"]
    validator = jsonschema.Draft202012Validator(node_type.full_config_schema())
    problems = [
        GraphProblem(error.message, node_id, ".".join(["config", *(str(p) for p in error.absolute_path)]))
        for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        return problems
    if node_type.check:
        problems += [
            GraphProblem(message, node_id, f"config.{key}") for key, message in node_type.check(config, resolver)
        ]
    if not problems:
        # Pins of a misconfigured node are guesses; its edges are checked once its config is right.
        pins[node_id] = node_type.pins_for(config, resolver)
    return problems


def _check_edges(raw_edges: list[dict], nodes: dict, pins: dict, problems: list[GraphProblem]) -> list[Edge]:
    edges = []
    for index, raw in enumerate(raw_edges):
        edge = Edge(f"e{index}", raw["source"], raw["source_output"], raw["target"], raw["target_input"])
        ok = True
        for end, node_id, pin, side in (
            ("source", edge.source, edge.source_output, 1),
            ("target", edge.target, edge.target_input, 0),
        ):
            if node_id not in nodes:
                problems.append(GraphProblem(f"edge {index} {end} {node_id!r} is not a node of this graph"))
                ok = False
            elif node_id in pins and pin not in pins[node_id][side].get("properties", {}):
                kind = "output" if side else "input"
                available = ", ".join(sorted(pins[node_id][side].get("properties", {}))) or "none"
                problems.append(
                    GraphProblem(f"has no {kind} {pin!r} (edge {index}); {kind}s: {available}", node_id, f"{kind}s")
                )
                ok = False
        if ok:
            edges.append(edge)
    return edges


def _index(nodes: dict[str, dict], edges: list[Edge]) -> Plan:
    plan = Plan(nodes=nodes, edges={edge.id: edge for edge in edges})
    incoming: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    outgoing: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        incoming[edge.target][edge.target_input].append(edge.id)
        outgoing[edge.source].append(edge.id)
    plan.incoming = {node: dict(by_pin) for node, by_pin in incoming.items()}
    plan.outgoing = dict(outgoing)
    return plan


def _check_required_inputs(plan: Plan, pins: dict) -> list[GraphProblem]:
    problems = []
    for node_id, (inputs, _) in pins.items():
        connected = plan.incoming.get(node_id, {})
        for pin in inputs.get("required", []):
            if pin not in connected:
                problems.append(GraphProblem(f"required input {pin!r} is not connected", node_id, f"inputs.{pin}"))
    return problems


def _check_entry_points(plan: Plan) -> list[GraphProblem]:
    if not plan.nodes:
        return [GraphProblem("the graph has no nodes")]
    entries = plan.entry_nodes()
    inputs = [node for node in entries if plan.node_type(node) == "input"]
    others = [node for node in entries if plan.node_type(node) != "input"]
    if (inputs and others) or len(others) > 1:
        names = ", ".join(repr(node) for node in others)
        return [GraphProblem(f"more than one entry point: {names} start without inputs (connect them)")]
    if not entries:
        return [GraphProblem("no entry point: every node waits for another")]
    return []


def _strongly_connected(plan: Plan) -> list[list[str]]:
    """Tarjan's algorithm, iterative (graphs are user input: no recursion limit surprises)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in plan.nodes:
        if root in index:
            continue
        work = [(root, iter(plan.successors(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(plan.successors(child))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _check_cycles(plan: Plan) -> list[GraphProblem]:
    problems = []
    for component in _strongly_connected(plan):
        looping = len(component) > 1 or component[0] in plan.successors(component[0])
        if looping and not any(plan.config(node).get("loop_limit") for node in component):
            names = ", ".join(sorted(component))
            problems.append(
                GraphProblem(f"the cycle through {names} has no loop_limit: set config.loop_limit on one of them")
            )
    return problems


def _back_edges(plan: Plan) -> set[str]:
    """Edges that close a cycle (to a node still on the depth-first path from the entries)."""
    back: set[str] = set()
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    for root in plan.entry_nodes() + list(plan.nodes):
        if root in state:
            continue
        work = [(root, iter(plan.outgoing.get(root, [])))]
        state[root] = 1
        while work:
            node, edge_ids = work[-1]
            edge_id = next(edge_ids, None)
            if edge_id is None:
                state[node] = 2
                work.pop()
                continue
            target = plan.edges[edge_id].target
            if state.get(target) == 1:
                back.add(edge_id)
            elif target not in state:
                state[target] = 1
                work.append((target, iter(plan.outgoing.get(target, []))))
    return back


def _check_io_names(plan: Plan) -> list[GraphProblem]:
    problems = []
    for node_type in ("input", "output"):
        seen: dict[str, str] = {}
        for node_id, node in plan.nodes.items():
            if node["type"] != node_type:
                continue
            name = node["config"].get("name")
            if name in seen:
                problems.append(GraphProblem(f"{node_type} name {name!r} is also used by {seen[name]!r}", node_id))
            seen[name] = node_id
    return problems


def derive_schemas(plan: Plan) -> tuple[dict, dict]:
    """The workflow's input and output JSON Schemas, from its input and output nodes."""
    inputs: dict[str, dict] = {}
    required: list[str] = []
    outputs: dict[str, dict] = {}
    for node in plan.nodes.values():
        config = node["config"]
        if node["type"] == "input":
            schema = dict(config.get("schema") or {"type": "string"})
            if config.get("description"):
                schema["description"] = config["description"]
            if "default" in config:
                schema["default"] = config["default"]
            elif config.get("required", True):
                required.append(config["name"])
            inputs[config["name"]] = schema
        elif node["type"] == "output":
            outputs[config["name"]] = dict(config.get("schema") or {})
    input_schema = {"type": "object", "properties": inputs, "required": sorted(required), "additionalProperties": False}
    output_schema = {"type": "object", "properties": outputs}
    return input_schema, output_schema


def plan_for(graph: dict) -> Plan:
    """The plan of an already published (validated) graph, without lookups."""
    nodes = {
        node["id"]: {"id": node["id"], "type": node["type"], "config": node.get("config") or {}}
        for node in graph["nodes"]
    }
    edges = [
        Edge(f"e{i}", e["source"], e["source_output"], e["target"], e["target_input"])
        for i, e in enumerate(graph["edges"])
    ]
    plan = _index(nodes, edges)
    plan.back_edges = frozenset(_back_edges(plan))
    plan.input_schema, plan.output_schema = derive_schemas(plan)
    return plan
