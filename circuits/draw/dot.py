"""The one DOT writer (pydot) for circuits, circuit diffs and predicted channels.

:func:`circuit_dot` lays a circuit out bottom-up: ``input`` at the bottom,
``logits`` at the top, each layer's heads on one rank and its MLP on the rank
above, with a layer axis on the side. Heads are ellipses, MLPs boxes. Edge
colour shows the sign of the score (blue: the metric drops when the edge is
corrupted, i.e. the circuit relies on it; red: the reverse) and the arrowhead
the head input entered (q, k, v); ``color_by="qkv"`` swaps the two (colour by
q/k/v input, dashed for positive scores). Pen width grows with ``|score|``;
every node and edge has a tooltip with its name and score in SVG. Under
grouped-query attention a key/value input is drawn as a small diamond feeding
the heads of its group that are in the circuit.

:func:`diff_dot` draws two circuits at once: shared edges, edges only in A,
edges only in B, in three styles. :func:`channels_dot` draws weight-predicted
channels (dashed, coloured by composition type, labelled with z-score and
rank) on the same layer layout, alone or over a circuit. Every text reaching
DOT goes through :mod:`circuits.draw.quote` (:func:`~circuits.draw.quote.dot_string`,
:func:`~circuits.draw.quote.dot_html` in the legend), and node ids are made of
``[A-Za-z0-9_]`` only. :mod:`circuits.draw.graphviz` turns the result into files.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

from circuits.circuit import Circuit
from circuits.draw.quote import dot_html, dot_string
from circuits.graph import GraphShape
from circuits.vocab import INPUT, LOGITS, InputError, head_name, parse_node

__all__ = ["channels_dot", "circuit_dot", "diff_dot"]
SIGN_COLOURS = {"neg": "#2166ac", "pos": "#b2182b"}
QKV_COLOURS = {"q": "#1b9e77", "k": "#d95f02", "v": "#7570b3", "": "#555555"}
ARROWS = {"q": "normal", "k": "diamond", "v": "dot", "": "vee"}
DIFF_STYLES = {"shared": ("#333333", "solid"), "a": ("#2166ac", "dashed"), "b": ("#e08214", "dotted")}
SHAPES = {"input": "invhouse", "logits": "house", "head": "ellipse", "mlp": "box", "head_input": "diamond"}
FILLS = {
    "input": "#e0e0e0",
    "logits": "#e0e0e0",
    "head": "#dbe9f6",
    "mlp": "#fde0c5",
    "head_input": "#ffffff",
}


def _id(name: str) -> str:
    """A DOT identifier for a node name (``a3.h1<q>`` -> ``n_a3_h1_q``): ``[A-Za-z0-9_]`` whatever the name.

    An id needs no quoting and cannot end a statement, and the ``n_`` prefix keeps it off DOT's keywords.

    >>> _id("a3.h1<q>"), _id('x"]; evil [URL="javascript:alert(1)"] é')
    ('n_a3_h1_q', 'n_x____evil__URL__javascript_alert_1')
    """
    return "n_" + re.sub(r"\W", "_", name, flags=re.ASCII).strip("_")


def _target(circuit: Circuit, receiver: str) -> str:
    """The drawn node an edge into ``receiver`` ends at."""
    _, layer, head, qkv = parse_node(receiver)
    if qkv == "q" or (qkv is not None and circuit.shape.group == 1):
        return head_name(layer, head)  # type: ignore[arg-type]
    return receiver


def _level(name: str) -> tuple[int, int]:
    """(layer, stage) used for ranking: stage 0 key/value inputs, 1 heads, 2 MLP."""
    kind, layer, _, qkv = parse_node(name)
    if kind == INPUT:
        return (-1, 2)
    if kind == LOGITS:
        return (10**6, 0)
    if kind == "mlp":
        return (layer, 2)  # type: ignore[return-value]
    return (layer, 0 if qkv else 1)  # type: ignore[return-value]


def _new_graph(title: str) -> Any:
    import pydot

    g = pydot.Dot(graph_type="digraph", rankdir="BT", newrank="true", ranksep="0.45", nodesep="0.18")
    g.set_graph_defaults(label=dot_string(title), labelloc="t", fontname="Helvetica", fontsize="14")
    g.set_node_defaults(fontname="Helvetica", fontsize="10", style="filled", height="0.3")
    g.set_edge_defaults(arrowsize="0.6")
    return g


def _add_nodes(g: Any, circuit: Circuit, names: set[str], extra_scores: dict[str, float]) -> None:
    """Nodes, one rank per layer stage, and a layer axis chained by invisible edges."""
    import pydot

    levels: dict[tuple[int, int], list[str]] = {}
    for name in names:
        levels.setdefault(_level(name), []).append(name)
    scores = {**extra_scores, **circuit.node_scores}
    axis = []
    for level in sorted(levels):
        layer, stage = level
        rank = pydot.Subgraph(rank="same")
        if 0 <= layer < 10**6:
            anchor = f"axis_{layer}_{stage}"
            text = ("", f"L{layer} attn", f"L{layer} mlp")[stage]
            rank.add_node(
                pydot.Node(
                    anchor,
                    label=dot_string(text),
                    shape="plaintext",
                    style="solid",
                    fontcolor="#888888",
                    fontsize="9",
                    height="0.1",
                )
            )
            axis.append(anchor)
        for name in sorted(levels[level], key=lambda n: (parse_node(n)[2] or 0, n)):
            kind, layer_, head, qkv = parse_node(name)
            kind = "head_input" if qkv else kind
            score = scores.get(name)
            tip = f"{name} ({kind}" + (f", layer {layer_})" if layer_ is not None else ")")
            tip += f" score {score:+.4g}" if score is not None else ""
            label = f"a{layer_} kv{head} {qkv}" if qkv else name
            attrs: dict[str, Any] = {
                "label": dot_string(label),
                "shape": SHAPES[kind],
                "fillcolor": dot_string(FILLS[kind]),
                "tooltip": dot_string(tip),
            }
            if kind == "head_input":
                attrs.update(fontsize="8", height="0.2")
            rank.add_node(pydot.Node(_id(name), **attrs))
        g.add_subgraph(rank)
    chain = ["axis_input", *axis, "axis_logits"]
    for end in (chain[0], chain[-1]):
        g.add_node(pydot.Node(end, label='""', shape="point", style="invis"))
    for a, b in itertools.pairwise(chain):
        g.add_edge(pydot.Edge(a, b, style="invis"))
    for end, name in (("axis_input", INPUT), ("axis_logits", LOGITS)):
        if name in names:
            same = pydot.Subgraph(rank="same")
            same.add_node(pydot.Node(end))
            same.add_node(pydot.Node(_id(name)))
            g.add_subgraph(same)


def _legend(g: Any, rows: list[tuple[str, str]]) -> None:
    import pydot

    cells = "".join(
        f'<TR><TD ALIGN="LEFT"><FONT COLOR="{dot_html(c)}">{dot_html(t)}</FONT></TD></TR>' for t, c in rows
    )
    box = pydot.Cluster("legend", label='"legend"', fontsize="10", color="#bbbbbb", style="rounded")
    box.add_node(
        pydot.Node(
            "legend",
            shape="plaintext",
            style="solid",
            fontsize="9",
            label=f'<<TABLE BORDER="0" CELLSPACING="1">{cells}</TABLE>>',
        )
    )
    g.add_subgraph(box)


def _draw_edges(g: Any, circuit: Circuit, styler: Any) -> set[str]:
    """Scored edges plus internal key/value -> head edges; returns the drawn node names."""
    import pydot

    names: set[str] = set()
    top = max((abs(s) for s in circuit.edges.values()), default=0.0) or 1.0
    for (sender, receiver), score in circuit.edges.items():
        target = _target(circuit, receiver)
        names |= {sender, target}
        edge_qkv = receiver[-2] if receiver.endswith(">") else ""
        attrs = {
            "penwidth": f"{0.6 + 4.4 * abs(score) / top:.3f}",
            "tooltip": dot_string(f"{sender} → {receiver}: score {score:+.4g}"),
            **styler(sender, receiver, edge_qkv, score),
        }
        g.add_edge(pydot.Edge(_id(sender), _id(target), **attrs))
    group = circuit.shape.group
    heads = {n for n in names if parse_node(n)[0] == "head" and parse_node(n)[3] is None}
    for name in sorted(n for n in names if n.endswith(">")):
        _, layer, kv, qkv = parse_node(name)
        for h in range(kv * group, (kv + 1) * group):  # type: ignore[operator]
            if head_name(layer, h) in heads:  # type: ignore[arg-type]
                g.add_edge(
                    pydot.Edge(
                        _id(name),
                        _id(head_name(layer, h)),
                        style="dashed",  # type: ignore[arg-type]
                        color='"#aaaaaa"',
                        arrowhead=ARROWS[qkv or ""],
                        tooltip=dot_string(f"{name} feeds {head_name(layer, h)}"),
                    )
                )  # type: ignore[arg-type]
    return names


def _title(c: Circuit) -> str:
    parts = [p for p in (c.model, c.relation, c.name) if p]
    n = c.params.get("n")
    by = c.params.get("by")
    bits = [
        f"{c.extract_method}" + (f" n={n}" if n is not None else "") + (f" by {by}" if by else ""),
        f"{c.n_edges} edges, {len(c.heads())} heads, {len(c.mlps())} MLPs",
    ]
    if c.faithfulness is not None:
        bits.append(f"faithfulness {c.faithfulness:.3f}")
    return " / ".join(parts) + "\n" + "; ".join(bits)


def circuit_dot(circuit: Circuit, *, color_by: str = "sign", title: str | None = None) -> Any:
    """A ``pydot.Dot`` of the circuit, laid out bottom-up by layer.

    ``input`` is at the bottom and ``logits`` at the top; each layer's heads
    (ellipses) share a rank and its MLP (a box) sits on the rank above. An
    edge into a head's ``<q>`` input (or, without grouped-query attention,
    its ``<k>`` / ``<v>`` input) ends at the head, its arrowhead telling which
    input (q normal, k diamond, v dot); under grouped-query attention a
    key/value input is a small diamond feeding the heads of its group that
    are in the circuit. Pen width grows with ``|score|``; in SVG every node
    and edge has a tooltip with its name and score. A legend explains the
    styles.

    Parameters
    ----------
    circuit : Circuit
        The circuit to draw.
    color_by : {"sign", "qkv"}
        ``"sign"``: blue for negative scores (the metric drops when the edge is
        corrupted: with logit difference, the edges the circuit relies on),
        red for positive ones. ``"qkv"``: colour by the head input entered,
        dashed for positive scores.
    title : str, optional
        The graph's label; by default the model, relation, name, extraction
        method and counts of edges, heads and MLPs (and faithfulness when set).

    Returns
    -------
    pydot.Dot
        ``to_string()`` gives the DOT text; :func:`circuits.render` writes it
        and, with Graphviz, SVG or PNG.

    Examples
    --------
    >>> from circuits.graph import GraphShape
    >>> c = Circuit(GraphShape(1, 1, 1), {("input", "a0.h0<q>"): -1.0, ("a0.h0", "logits"): 0.5})
    >>> "n_a0_h0 -> n_logits" in circuit_dot(c).to_string()
    True

    A tiny model's circuit:

    >>> from circuits import ScoreSettings, circuit_dot, extract, load_model, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, _ = score_relation(load_model("tiny-llama"), "country_capital_city", settings, progress=False)
    >>> text = circuit_dot(extract(graph, "top-n", size=30), title="capital circuit").to_string()
    >>> text.startswith("digraph G {"), 'label="capital circuit"' in text, "n_input -> " in text
    (True, True, True)
    """
    if color_by not in ("sign", "qkv"):
        raise InputError(f"color_by is 'sign' or 'qkv', not {color_by!r}")

    def styler(sender: str, receiver: str, qkv: str, score: float) -> dict[str, str]:
        sign = "neg" if score < 0 else "pos"
        if color_by == "sign":
            return {"color": dot_string(SIGN_COLOURS[sign]), "arrowhead": ARROWS[qkv]}
        return {
            "color": dot_string(QKV_COLOURS[qkv]),
            "arrowhead": ARROWS[qkv],
            "style": "solid" if sign == "neg" else "dashed",
        }

    g = _new_graph(title or _title(circuit))
    names = _draw_edges(g, circuit, styler)
    _add_nodes(g, circuit, names, {})
    if color_by == "sign":
        rows = [("negative score (relied on)", SIGN_COLOURS["neg"]), ("positive score", SIGN_COLOURS["pos"])]
    else:
        rows = [(f"into {q}" if q else "into MLP / logits", c) for q, c in QKV_COLOURS.items()]
        rows.append(("dashed: positive score", "#555555"))
    rows += [
        ("arrow: q normal, k diamond, v dot", "#555555"),
        ("width: |score|", "#555555"),
        ("ellipse head, box MLP", "#555555"),
    ]
    _legend(g, rows)
    return g


def diff_dot(a: Circuit, b: Circuit, *, labels: tuple[str, str] | None = None) -> Any:
    """A ``pydot.Dot`` of two circuits: shared edges, only-A edges and only-B edges styled apart."""
    if a.shape != b.shape:
        raise InputError("circuits of different graph shapes cannot be drawn together")
    la, lb = labels or (a.label(), b.label())
    if la == lb:
        la, lb = f"A: {la}", f"B: {lb}"
    union = {**b.edges, **a.edges}
    where = {e: "shared" if e in a.edges and e in b.edges else ("a" if e in a.edges else "b") for e in union}
    merged = Circuit(a.shape, union, {**b.node_scores, **a.node_scores}, a.provenance, "diff")

    def styler(sender: str, receiver: str, qkv: str, score: float) -> dict[str, str]:
        colour, style = DIFF_STYLES[where[(sender, receiver)]]
        return {"color": dot_string(colour), "style": style, "arrowhead": ARROWS[qkv]}

    counts = {k: sum(1 for v in where.values() if v == k) for k in DIFF_STYLES}
    g = _new_graph(
        f"{la} vs {lb}\n{counts['shared']} shared, {counts['a']} only in {la}, {counts['b']} only in {lb}"
    )
    names = _draw_edges(g, merged, styler)
    _add_nodes(g, merged, names, {})
    _legend(
        g,
        [
            (f"shared ({counts['shared']}, solid)", DIFF_STYLES["shared"][0]),
            (f"only in {la} ({counts['a']}, dashed)", DIFF_STYLES["a"][0]),
            (f"only in {lb} ({counts['b']}, dotted)", DIFF_STYLES["b"][0]),
            ("width: |score| (A's where shared)", "#555555"),
        ],
    )
    return g


CHANNEL_STYLES = {"both": ("#000000", "bold,dashed"), "circuit": ("#999999", "solid")}


def channels_dot(
    channels: Sequence[Any],
    shape: GraphShape,
    *,
    circuit: Circuit | None = None,
    title: str | None = None,
) -> Any:
    """A ``pydot.Dot`` of predicted channels (``sender``, ``receiver``, ``kind``, ``z``, ``rank``).

    Channels are dashed, coloured by composition type (q, k, v) and labelled
    with their z-score and rank. With ``circuit``, its edges are drawn solid
    grey underneath, and a channel that coincides with a circuit edge is bold
    dashed black.

    >>> from types import SimpleNamespace as Ch
    >>> ch = Ch(sender="a0.h0", receiver="a1.h0<q>", kind="q", z=5.0, rank=1)
    >>> text = channels_dot([ch], GraphShape(2, 1, 1)).to_string()
    >>> "n_a0_h0 -> n_a1_h0" in text and "dashed" in text
    True
    """
    by_edge = {(c.sender, c.receiver): c for c in channels}
    own = dict(circuit.edges) if circuit is not None else {}
    if circuit is not None and circuit.shape != shape:
        raise InputError("the circuit and the channels belong to graphs of different shapes")
    merged = Circuit(shape, {**{e: float(c.z) for e, c in by_edge.items()}, **own}, name="channels")
    top_z = max((abs(float(c.z)) for c in channels), default=1.0) or 1.0

    def styler(sender: str, receiver: str, qkv: str, score: float) -> dict[str, str]:
        channel = by_edge.get((sender, receiver))
        if channel is None:
            colour, style = CHANNEL_STYLES["circuit"]
            return {"color": dot_string(colour), "style": style, "arrowhead": ARROWS[qkv], "penwidth": "1.2"}
        colour, style = CHANNEL_STYLES["both"] if (sender, receiver) in own else (QKV_COLOURS[qkv], "dashed")
        width = 0.8 + 3.2 * abs(channel.z) / top_z
        return {
            "color": dot_string(colour),
            "style": style,
            "arrowhead": ARROWS[qkv],
            "fontsize": "8",
            "penwidth": f"{width:.3f}",
            "label": dot_string(f"z={channel.z:.1f} r={channel.rank}"),
            "tooltip": dot_string(
                f"{sender} → {receiver}: {channel.kind}-composition z={channel.z:.2f}, rank {channel.rank}"
            ),
        }

    n_shared = sum(1 for e in by_edge if e in own)
    default = f"{len(by_edge)} predicted channels" + (
        f" over a {len(own)}-edge circuit ({n_shared} coincide)" if circuit is not None else ""
    )
    g = _new_graph(title or default)
    names = _draw_edges(g, merged, styler)
    _add_nodes(g, merged, names, {})
    rows = [(f"channel into {q}", c) for q, c in QKV_COLOURS.items() if q]
    if circuit is not None:
        rows += [
            ("circuit edge (solid)", CHANNEL_STYLES["circuit"][0]),
            ("channel on a circuit edge (bold)", CHANNEL_STYLES["both"][0]),
        ]
    _legend(g, [*rows, ("label: z-score and rank", "#555555")])
    return g
