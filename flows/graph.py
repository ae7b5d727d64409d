"""The shape of a flow's graph: scopes (the top level and each loop's body), which edges are
allowed, the order steps are listed in, and which steps run before which.

Used by the compiler before a deploy; every problem names its step. The engine walks the same
edges at run time (flows.engine.graph).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from flows import catalog
from flows.document import TRIGGER, Issue, edge_list, issue

TOP = ""  # the scope of steps outside any loop


@dataclass
class Graph:
    ids: list[str]  # step ids in document order
    parent: dict[str, str]  # step id -> the loop whose body holds it (TOP outside loops)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # the valid ones
    order: list[str] = field(default_factory=list)  # every step, each after its inputs
    ancestors: dict[str, set[str]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def scope_of(self, node: str) -> str:
        return TOP if node == TRIGGER else self.parent.get(node, TOP)


def _ports(step: dict[str, Any] | None) -> list[str]:
    if step is None:  # the trigger
        return ["out"]
    block = catalog.get_block(step.get("kind", ""))
    if block is None:
        return []  # the compiler reports the unknown block
    return catalog.block_ports(block, step.get("config") or {})


def analyse(document: dict[str, Any]) -> Graph:
    steps = {s["id"]: s for s in document.get("steps", [])}
    ids = list(steps)
    parent: dict[str, str] = {}
    graph = Graph(ids=ids, parent=parent)
    add = graph.issues.append
    for step_id, step in steps.items():
        loop = step.get("parent")
        if loop is None:
            parent[step_id] = TOP
            continue
        block = catalog.get_block(steps[loop].get("kind", "")) if loop in steps else None
        if not isinstance(loop, str) or loop not in steps or not (block and block.has_body):
            add(issue(step_id, "parent", f"'parent' must name a loop step, not {loop!r}"))
            parent[step_id] = TOP
        else:
            parent[step_id] = loop
    # A loop may not sit inside its own body, however deep.
    for step_id in ids:
        seen, current = {step_id}, parent[step_id]
        while current != TOP:
            if current in seen:
                add(issue(step_id, "parent", "loops are nested inside each other in a circle"))
                parent[step_id] = TOP
                break
            seen.add(current)
            current = parent[current]

    for step_id, step in steps.items():
        block = catalog.get_block(step.get("kind", ""))
        if block and block.has_body and step_id not in parent.values():
            add(
                issue(
                    step_id,
                    "parent",
                    'this loop has no body: put steps inside it (their "parent" names it)',
                )
            )

    nodes = {TRIGGER, *ids}
    successors: dict[str, list[tuple[str, str]]] = {n: [] for n in nodes}
    for source, port, target in edge_list(document):
        where = f"edge '{source}' → '{target}'"
        bad = [n for n in (source, target) if n not in nodes]
        if bad:
            add(Issue(f"{where}: step '{bad[0]}' does not exist", None, "edges"))
            continue
        if target == TRIGGER:
            add(Issue("no edge may lead into the trigger", None, "edges"))
            continue
        ports = _ports(steps.get(source))
        if ports and port not in ports:
            add(
                issue(
                    source,
                    "edges",
                    f"{where} leaves from port '{port}', which this step does not have "
                    "(its ports: " + ", ".join(ports) + ")",
                )
            )
            continue
        into_body = port == "body" and parent.get(target) == source
        if port == "body" and not into_body:
            add(
                issue(
                    target,
                    "edges",
                    f"{where}: the body port of loop '{source}' leads only to steps inside it",
                )
            )
            continue
        if not into_body and graph.scope_of(source) != graph.scope_of(target):
            loop = graph.scope_of(source) or graph.scope_of(target)
            add(
                issue(
                    target,
                    "edges",
                    f"{where} crosses the boundary of loop '{loop}': a loop's body connects "
                    "only inside itself, and the loop's 'out' port carries its results on",
                )
            )
            continue
        if (source, port, target) in graph.edges:
            continue
        graph.edges.append((source, port, target))
        successors[source].append((port, target))

    # Reachability: the top level from the trigger, a body from its loop's body port.
    reachable = {TRIGGER}
    stack = [TRIGGER]
    while stack:
        for _port, nxt in successors[stack.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                stack.append(nxt)
    for step_id in ids:
        if step_id not in reachable:
            if parent[step_id] != TOP:
                text = f"nothing in loop '{parent[step_id]}' leads to this step"
            else:
                text = "no edge from the trigger leads to this step"
            add(issue(step_id, "edges", text))

    # Order: Kahn's algorithm over all edges (body edges included), ties by document order.
    index = {step_id: i for i, step_id in enumerate(ids)}
    indegree = dict.fromkeys(ids, 0)
    for source, _port, target in graph.edges:
        if source != TRIGGER:
            indegree[target] += 1
    ready = [index[s] for s in ids if s in reachable and indegree[s] == 0]
    heapq.heapify(ready)
    while ready:
        current = ids[heapq.heappop(ready)]
        graph.order.append(current)
        for _port, nxt in successors[current]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, index[nxt])
    cyclic = [s for s in ids if s in reachable and s not in graph.order]
    if cyclic:
        add(
            Issue(
                "edges form a cycle through steps "
                + ", ".join(f"'{s}'" for s in cyclic)
                + " (to repeat steps, put them in a For each loop)",
                cyclic[0],
                "edges",
            )
        )
    # Steps that run before each step: what its templates may read. A body step sees its loop's
    # ancestors (not the loop itself: its output is the list built from the bodies).
    predecessors: dict[str, list[str]] = {s: [] for s in ids}
    for source, _port, target in graph.edges:
        if source != TRIGGER:
            predecessors[target].append(source)
    for step_id in graph.order:
        before: set[str] = set()
        for source in predecessors[step_id]:
            if parent[step_id] == source:
                before |= graph.ancestors.get(source, set())
            else:
                before |= {source} | graph.ancestors.get(source, set())
        graph.ancestors[step_id] = before
    return graph


def body_of(graph: Graph, loop: str) -> list[str]:
    """The steps directly inside a loop's body, in run order."""
    return [s for s in graph.order if graph.parent.get(s) == loop]
