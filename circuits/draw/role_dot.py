"""A DOT diagram of a position-aware circuit, one lane per position role.

:func:`role_dot` draws the (edge, role) units of a position-aware
:class:`~circuits.circuit.Circuit` in lanes, left to right ``first``, ``demo``,
``subject``, ``relation``, ``last`` (:data:`~circuits.relations.roles.ROLES`;
a lane that holds nothing is left out), split by grey lines. Layers run
bottom (``input``) to top (``logits``) with a layer axis on the left, and the
nodes of one layer share a rank across lanes. A drawn node is a component *at
a role*: ``a23.h4`` in the ``last`` lane is that head's output at the last
position.

A unit ``(u → v, r)`` says u's output at the positions of role ``r`` enters v's
input there. Into a query or MLP input it is drawn inside lane ``r``; into
``logits`` it ends at ``logits`` in the ``last`` lane (the only position the
logits are read at). Into a key or value input read at ``r`` it changes the
head's output at the query roles that may attend to ``r``
(:data:`~circuits.relations.roles.READERS`): it is drawn to each head of that
key/value group that the circuit keeps at such a role (that sends a unit
there), dashed where that role is not ``r``; these edges are where information
moves between positions. With no such head it ends at the head at ``r``
(under grouped-query attention at a small diamond for key/value head at ``r``).
For a large circuit, where one unit would fan out to every head of its group
at up to four roles, key/value units end at such a diamond in lane ``r``
instead, and purple edges lead from it to the heads (at their roles) reading
it (``kv_hubs``).

Colours and arrowheads follow :func:`circuits.draw.dot.circuit_dot`: blue for
negative scores, red for positive, arrowhead normal / diamond / dot for q / k / v;
pen width grows with the unit's ``|score|``. In SVG every node and edge has a
tooltip with its names, role and score. Every text reaching DOT goes through
:mod:`circuits.draw.quote` (backslashes, quotes, control characters and
entities included); node ids are made of ``[A-Za-z0-9_]`` only.

Lanes are kept in order by invisible fences: at every rank a chain of
invisible points ordered by flat edges, the lanes' nodes between them, joined
from rank to rank into straight lines (drawn as the dividers). Graphviz cannot
order clusters, which is why lanes are not clusters.
"""

from __future__ import annotations

import itertools
from typing import Any

from circuits.circuit import Circuit, component_of
from circuits.draw.dot import ARROWS, FILLS, SHAPES, SIGN_COLOURS, _id, _level
from circuits.draw.quote import dot_html, dot_string
from circuits.relations.roles import READERS, ROLES
from circuits.vocab import INPUT, LOGITS, InputError, head_name, parse_node

__all__ = ["role_dot"]

CROSS_STYLE = "dashed"
HUB_COLOUR = "#6a3d9a"
AUTO_HUBS = 20
"""With ``kv_hubs=None``, key/value hubs are drawn when direct edges would add more than this many edges."""
FENCE_COPIES = 5
"""Parallel copies of each fence segment. Graphviz adds up the crossing penalties of parallel edges, so an
edge that would leave its lane and come back pays ten crossings for it, and stays in its lane."""
_HEADER = (10**6 + 1, 0)  # the rank of the lane titles, above logits

Node = tuple[str, str]  # (component or key/value input, role)


def _node_id(name: str, role: str) -> str:
    return f"{_id(name)}__{role}"


def _unit_order(unit: tuple[str, ...]) -> tuple[Any, ...]:
    sender, receiver, role = unit
    return (_level(receiver), _level(sender), sender, receiver, ROLES.index(role))


def _title(c: Circuit) -> str:
    parts = [str(p) for p in (c.model, c.relation, c.name) if p]
    n, by = c.params.get("n"), c.params.get("by")
    method = f"{c.extract_method}" + (f" n={n}" if n is not None else "") + (f" by {by}" if by else "")
    counts = ", ".join(f"{role} {k}" for role, k in c.role_counts().items() if k)
    edges = f"{c.n_edges} edge" + "s" * (c.n_edges != 1)
    bits = [method, f"{_units(c.n_units)} on {edges} ({counts or 'none'})"]
    if c.faithfulness is not None:
        bits.append(f"faithfulness {c.faithfulness:.3f}")
    return (" / ".join(parts) + "\n" if parts else "") + "; ".join(bits)


def _targets(circuit: Circuit, receiver: str, role: str, sends_at: dict[str, set[str]]) -> list[Node]:
    """The drawn nodes a unit into ``receiver`` at ``role`` ends at (see the module docstring)."""
    if receiver == LOGITS:
        return [(LOGITS, "last")]
    _, layer, index, qkv = parse_node(receiver)
    if qkv is None or qkv == "q":
        return [(component_of(receiver), role)]  # type: ignore[list-item]
    group = circuit.shape.group
    heads = [head_name(layer, h) for h in range(index * group, (index + 1) * group)]  # type: ignore[arg-type,operator]
    found = [(h, rho) for h in heads for rho in READERS[role] if rho in sends_at.get(h, set())]
    if found:
        return found
    return [(head_name(layer, index), role) if group == 1 else (_hub(receiver), role)]  # type: ignore[arg-type]


def _graph(title: str) -> Any:
    import pydot

    g = pydot.Dot(
        graph_type="digraph",
        rankdir="BT",
        newrank="true",
        ranksep="0.28",
        nodesep="0.14",
        outputorder="edgesfirst",
    )
    g.set_graph_defaults(label=dot_string(title), labelloc="t", fontname="Helvetica", fontsize="14")
    g.set_node_defaults(
        fontname="Helvetica", fontsize="10", style="filled", height="0.26", margin='"0.05,0.02"'
    )
    g.set_edge_defaults(arrowsize="0.6")
    return g


def _hub(receiver: str) -> str:
    """The key input standing for a key/value head's k and v inputs (``a3.h1<v>`` -> ``a3.h1<k>``)."""
    return receiver[:-3] + "<k>"


def role_dot(circuit: Circuit, *, title: str | None = None, kv_hubs: bool | None = None) -> Any:
    """A ``pydot.Dot`` of a position-aware circuit, one lane per position role.

    Lanes run left to right ``first``, ``demo``, ``subject``, ``relation``, ``last``
    (only those holding a node), split by grey lines, layers bottom
    (``input``) to top (``logits``), with a layer axis on the left; nodes of
    one layer share a rank across lanes. A node is a component at a role (id
    ``n_a3_h1__subject`` for ``a3.h1`` in the subject lane); heads are
    ellipses, MLPs boxes, ``logits`` sits in the ``last`` lane only.

    A unit ``(u → v, r)`` into a query or MLP input is an edge from ``u`` to v's
    component within lane ``r``; into ``logits`` it ends at ``logits`` in the
    last lane. A unit into the key/value input of key/value head ``(l, kv)``
    read at ``r`` ends at each head of that group the circuit keeps at a
    query role that may read ``r`` (the head sends a unit at that role;
    :data:`~circuits.relations.roles.READERS`), dashed where that role is not
    ``r``: these edges carry information across positions. If no head of the
    group qualifies it ends at the head at ``r`` (under grouped-query
    attention at a small diamond, id ``n_a3_h0_k__r``, for the key/value head
    at ``r``).

    Edge colour gives the sign of the unit's score (blue negative: the circuit
    relies on it with logit difference; red positive), the arrowhead the head
    input entered (q normal, k diamond, v dot), the pen width ``|score|``. In
    SVG every node and edge has a tooltip (names, role, score).

    Parameters
    ----------
    circuit : Circuit
        A position-aware circuit (``circuit.roles`` is set).
    title : str, optional
        The graph's label; by default the model, relation, name, extraction
        method, unit and edge counts, units per role and faithfulness when set.
    kv_hubs : bool, optional
        ``True``: draw each key/value unit once, into the diamond of its
        key/value head in lane ``r``, and each diamond's readers once, as
        purple edges (dashed across lanes) to the heads at the roles that read
        ``r``. ``False``: draw every unit to every head reading it, as above.
        ``None`` (default): diamonds when drawing units to their readers would
        add more than :data:`AUTO_HUBS` edges (a unit read at ``first`` by
        three heads kept at four roles is twelve edges).

    Returns
    -------
    pydot.Dot
        Render it with :func:`circuits.draw.graphviz.render`.

    Raises
    ------
    InputError
        The circuit is not position-aware.

    Examples
    --------
    >>> from circuits.graph import GraphShape
    >>> roles = {("input", "a0.h0<k>"): {"subject": -1.0}, ("a1.h0", "logits"): {"last": -2.0},
    ...          ("a0.h0", "a1.h0<q>"): {"last": 0.5}}
    >>> c = Circuit(GraphShape(2, 2, 1), dict.fromkeys(roles, 0.0), roles=roles)
    >>> text = role_dot(c).to_string()
    >>> "n_input__subject -> n_a0_h0__last" in text, "n_a1_h0__last -> n_logits__last" in text
    (True, True)
    """
    import pydot

    if circuit.roles is None:
        raise InputError(
            f"{circuit.label()!r} is not a position-aware circuit (its edges are summed over "
            "positions, it has no roles); draw it with circuit_dot, or extract a circuit from "
            "a graph scored with `--positions roles`"
        )
    units = sorted(circuit.units(), key=_unit_order)
    sends_at: dict[str, set[str]] = {}
    sent: dict[Node, list[float]] = {}
    for sender, receiver, role in units:
        sends_at.setdefault(sender, set()).add(role)
        sent.setdefault((sender, role), []).append(circuit.roles[(sender, receiver)][role])
    top = max((abs(s) for kept in circuit.roles.values() for s in kept.values()), default=0.0) or 1.0

    targets = {unit: _targets(circuit, unit[1], unit[2], sends_at) for unit in units}
    if kv_hubs is None:
        fan_out = sum(len(t) - 1 for t in targets.values())
        kv_hubs = fan_out > AUTO_HUBS
    nodes: set[Node] = set()
    edges: list[tuple[Node, Node, dict[str, Any]]] = []
    hubs: dict[Node, list[Node]] = {}
    for (sender, receiver, role), ends in targets.items():
        score = circuit.roles[(sender, receiver)][role]
        qkv = parse_node(receiver)[3] or ""
        if kv_hubs and qkv in ("k", "v"):
            hub = (_hub(receiver), role)
            hubs[hub] = [t for t in ends if not t[0].endswith(">")]
            ends = [hub]
        for target in ends:
            nodes |= {(sender, role), target}
            cross = target[1] != role
            tip = f"{sender} → {receiver} at {role}"
            if qkv in ("k", "v") and not target[0].endswith(">"):
                tip += f", read by {target[0]} at {target[1]}"
            elif receiver == LOGITS and role != "last":
                tip += " (logits are read at the last position only)"
            width = 0.7 + 3.8 * abs(score) / top
            attrs: dict[str, Any] = {
                "color": dot_string(SIGN_COLOURS["neg" if score < 0 else "pos"]),
                "arrowhead": ARROWS[qkv],
                "penwidth": f"{max(width, 1.2) if cross else width:.3f}",
                "tooltip": dot_string(f"{tip}: score {score:+.4g}"),
                "weight": "1" if cross else "3",
            }
            if cross:
                attrs["style"] = CROSS_STYLE
            edges.append(((sender, role), target, attrs))
    for (kv_input, role), reads in sorted(hubs.items()):
        _, layer, kv, _ = parse_node(kv_input)
        for head, rho in reads:
            nodes.add((head, rho))
            edges.append(
                (
                    (kv_input, role),
                    (head, rho),
                    {
                        "color": dot_string(HUB_COLOUR),
                        "style": CROSS_STYLE if rho != role else "solid",
                        "penwidth": "1.4" if rho != role else "0.8",
                        "arrowhead": "vee",
                        "weight": "1",
                        "minlen": "2",
                        "tooltip": dot_string(
                            f"a{layer} key/value head {kv} read at {role} feeds {head}'s output at {rho}"
                        ),
                    },
                )
            )

    g = _graph(title or _title(circuit))
    _layout(g, circuit, nodes, sent, bool(hubs), {(s, t) for s, t, _ in edges})
    for source, target, attrs in edges:
        g.add_edge(pydot.Edge(_node_id(*source), _node_id(*target), **attrs))
    return g


def _layout(
    g: Any,
    circuit: Circuit,
    nodes: set[Node],
    sent: dict[Node, list[float]],
    hubs: bool,
    links: set[tuple[Node, Node]],
) -> None:
    """Nodes on one rank per layer stage, in lanes kept apart by flat invisible edges and grey dividers.

    Graphviz's median pass may swap two nodes across a node that has no edge to the neighbouring rank,
    breaking that node's flat constraints; so a node with no edge from below (above) gets an invisible
    weightless one from (to) its lane's left fence on the rank below (above).
    """
    import pydot

    ins, outs = {t for _, t in links}, {s for s, _ in links}

    lanes = [r for r in ROLES if any(role == r for _, role in nodes)] or ["last"]
    counts = circuit.role_counts()
    levels: dict[tuple[int, int], list[Node]] = {_level(INPUT): [], _HEADER: []}
    for node in nodes:
        levels.setdefault(_level(node[0]), []).append(node)
    order = sorted(levels)
    previous: list[str] = []
    for j, level in enumerate(order):
        layer, stage = level
        same = pydot.Subgraph(rank="same")
        if 0 <= layer < 10**6:
            text = (f"L{layer} k/v", f"L{layer} attn", f"L{layer} mlp")[stage]
            axis = pydot.Node(
                f"axis_{j}",
                label=dot_string(text),
                shape="plaintext",
                style="solid",
                fontcolor='"#888888"',
                fontsize="9",
                height="0.1",
            )
        else:
            axis = pydot.Node(f"axis_{j}", label='""', shape="point", style="invis", width="0.01")
        same.add_node(axis)
        seps = [f"sep{i}_{j}" for i in range(1, len(lanes) + 1)]  # the last one closes the last lane
        for sep in seps:
            same.add_node(pydot.Node(sep, label='""', shape="point", style="invis", width="0.01"))
        fence = [_fence(i, j) for i in range(len(lanes) + 1)]
        for a, b in itertools.pairwise(fence):
            same.add_edge(pydot.Edge(a, b, style="invis"))
        members: list[tuple[int, str]] = []
        if level == _HEADER:
            for i, lane in enumerate(lanes):
                same.add_node(
                    pydot.Node(
                        f"lane_{lane}",
                        label=dot_string(f"{lane}\n{_units(counts[lane])}"),
                        shape="plaintext",
                        style="solid",
                        fontsize="13",
                        tooltip=dot_string(f"role {lane}: {_units(counts[lane])}"),
                    )
                )
                members.append((i, f"lane_{lane}"))
        for name, role in sorted(levels[level], key=lambda n: (ROLES.index(n[1]), _head_index(n[0]), n[0])):
            same.add_node(_draw_node(name, role, sent.get((name, role), [])))
            i, node_id = lanes.index(role), _node_id(name, role)
            members.append((i, node_id))
            if (name, role) not in ins and j > 0:
                g.add_edge(pydot.Edge(_fence(i, j - 1), node_id, style="invis", weight="0"))
            if (name, role) not in outs:
                g.add_edge(pydot.Edge(node_id, _fence(i, j + 1), style="invis", weight="0"))
        if level == _level(INPUT):
            same.add_node(_legend_node(hubs))
            members.append((len(lanes), "legend"))
        for i, node_id in members:
            same.add_edge(pydot.Edge(fence[i], node_id, style="invis"))
            if i + 1 < len(fence):
                same.add_edge(pydot.Edge(node_id, fence[i + 1], style="invis"))
        g.add_subgraph(same)
        for i, (a, b) in enumerate(zip(previous, fence, strict=False)):  # the axis and the dividers, straight
            visible = 0 < i < len(fence) - 1
            for copy in range(FENCE_COPIES):  # parallel copies: crossing a fence costs that many crossings
                shown = visible and copy == FENCE_COPIES // 2  # the middle copy is drawn straight
                g.add_edge(
                    pydot.Edge(
                        a,
                        b,
                        dir="none",
                        weight="1000",
                        color='"#c8c8c8"',
                        penwidth="1.2",
                        style="solid" if shown else "invis",
                    )
                )
        previous = fence


def _fence(i: int, j: int) -> str:
    """The fence left of lane ``i`` (the axis for the first lane) on the ``j``-th rank from the bottom."""
    return f"sep{i}_{j}" if i else f"axis_{j}"


def _units(n: int) -> str:
    return f"{n} unit" + "s" * (n != 1)


def _head_index(name: str) -> int:
    return parse_node(name)[2] or 0


def _legend_node(hubs: bool) -> Any:
    import pydot

    rows = [
        ("negative score (relied on)", SIGN_COLOURS["neg"]),
        ("positive score", SIGN_COLOURS["pos"]),
        ("arrow: q normal, k diamond, v dot", "#555555"),
        ("width: |score| of the unit", "#555555"),
    ]
    if hubs:
        rows += [
            ("diamond: key/value head read at the lane's role", "#555555"),
            ("purple: into the heads reading it; dashed when", HUB_COLOUR),
            ("   their output is at another role", HUB_COLOUR),
        ]
    else:
        rows += [
            ("dashed: k/v read at one role changes", "#555555"),
            ("   the head's output at another", "#555555"),
        ]
    rows += [("node: component at the lane's role", "#555555"), ("ellipse head, box MLP", "#555555")]
    cells = "".join(
        f'<TR><TD ALIGN="LEFT"><FONT COLOR="{dot_html(c)}">{dot_html(t)}</FONT></TD></TR>' for t, c in rows
    )
    label = f'<<TABLE BORDER="1" COLOR="#bbbbbb" CELLSPACING="1" CELLBORDER="0">{cells}</TABLE>>'
    return pydot.Node("legend", shape="plaintext", style="solid", fontsize="9", label=label)


def _draw_node(name: str, role: str, sent: list[float]) -> Any:
    import pydot

    kind, layer, head, qkv = parse_node(name)
    if qkv:
        label = f"a{layer} kv{head}"
        tip = f"key/value head {head} of layer {layer} (its k and v inputs) read at {role}"
        attrs: dict[str, Any] = {
            "shape": SHAPES["head_input"],
            "fillcolor": dot_string(FILLS["head_input"]),
            "fontsize": "8",
            "height": "0.2",
        }
    else:
        label = name
        tip = f"{name} at {role} ({kind}" + (f", layer {layer})" if layer is not None else ")")
        if sent:
            tip += f"; sends {len(sent)} unit{'s' * (len(sent) > 1)} at {role}, score sum {sum(sent):+.4g}"
        attrs = {"shape": SHAPES[kind], "fillcolor": dot_string(FILLS[kind])}
    return pydot.Node(_node_id(name, role), label=dot_string(label), tooltip=dot_string(tip), **attrs)
