"""Drawing circuits: Graphviz DOT through pydot, SVG/PNG through ``dot``, SVG heatmaps.

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
edges only in B, in three styles. :func:`render` writes the DOT file and runs
the ``dot`` executable for SVG or PNG; without Graphviz the DOT file is still
written and the message says how to install it. :func:`heatmap_svg` writes a
reuse matrix as a small self-contained SVG (no plotting library).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from circuits.circuit import Circuit
from circuits.vocab import INPUT, LOGITS, CircuitsError, InputError, head_name, parse_node

__all__ = ["FORMATS", "GRAPHVIZ_HINT", "Rendered", "circuit_dot", "diff_dot", "heatmap_svg", "render"]

log = logging.getLogger(__name__)

FORMATS = ("svg", "png", "dot")
GRAPHVIZ_HINT = ("Graphviz's `dot` executable was not found, so only the DOT file was written; install "
                 "Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`, macOS: `brew install graphviz`, "
                 "conda: `conda install -c conda-forge graphviz`) and run `circuits render` again")  # fmt: skip
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
    """A DOT identifier for a node name (``a3.h1<q>`` -> ``a3_h1_q``)."""
    return "n_" + re.sub(r"\W", "_", name).strip("_")


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
    g.set_graph_defaults(label=_q(title), labelloc="t", fontname="Helvetica", fontsize="14")
    g.set_node_defaults(fontname="Helvetica", fontsize="10", style="filled", height="0.3")
    g.set_edge_defaults(arrowsize="0.6")
    return g


def _q(text: str) -> str:
    return '"' + text.replace('"', '\\"').replace("\n", "\\n") + '"'


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
            rank.add_node(pydot.Node(anchor, label=_q(text), shape="plaintext", style="solid",
                                     fontcolor="#888888", fontsize="9", height="0.1"))  # fmt: skip
            axis.append(anchor)
        for name in sorted(levels[level], key=lambda n: parse_node(n)[2] or 0):
            kind, layer_, head, qkv = parse_node(name)
            kind = "head_input" if qkv else kind
            score = scores.get(name)
            tip = f"{name} ({kind}" + (f", layer {layer_})" if layer_ is not None else ")")
            tip += f" score {score:+.4g}" if score is not None else ""
            label = f"a{layer_} kv{head} {qkv}" if qkv else name
            attrs: dict[str, Any] = {"label": _q(label), "shape": SHAPES[kind], "fillcolor": _q(FILLS[kind]),
                                     "tooltip": _q(tip)}  # fmt: skip
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

    cells = "".join(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{c}">{escape(t)}</FONT></TD></TR>' for t, c in rows)
    box = pydot.Cluster("legend", label='"legend"', fontsize="10", color="#bbbbbb", style="rounded")
    box.add_node(pydot.Node("legend", shape="plaintext", style="solid", fontsize="9",
                            label=f'<<TABLE BORDER="0" CELLSPACING="1">{cells}</TABLE>>'))  # fmt: skip
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
        attrs = {"penwidth": f"{0.6 + 4.4 * abs(score) / top:.3f}",
                 "tooltip": _q(f"{sender} → {receiver}: score {score:+.4g}"), **styler(sender, receiver, edge_qkv, score)}  # fmt: skip
        g.add_edge(pydot.Edge(_id(sender), _id(target), **attrs))
    group = circuit.shape.group
    heads = {n for n in names if parse_node(n)[0] == "head" and parse_node(n)[3] is None}
    for name in sorted(n for n in names if n.endswith(">")):
        _, layer, kv, qkv = parse_node(name)
        for h in range(kv * group, (kv + 1) * group):  # type: ignore[operator]
            if head_name(layer, h) in heads:  # type: ignore[arg-type]
                g.add_edge(pydot.Edge(_id(name), _id(head_name(layer, h)), style="dashed",  # type: ignore[arg-type]
                                      color='"#aaaaaa"', arrowhead=ARROWS[qkv or ""],
                                      tooltip=_q(f"{name} feeds {head_name(layer, h)}")))  # type: ignore[arg-type]  # fmt: skip
    return names


def _title(c: Circuit) -> str:
    parts = [p for p in (c.model, c.relation, c.name) if p]
    n = c.params.get("n")
    by = c.params.get("by")
    bits = [f"{c.method}" + (f" n={n}" if n is not None else "") + (f" by {by}" if by else ""),
            f"{c.n_edges} edges, {len(c.heads())} heads, {len(c.mlps())} MLPs"]  # fmt: skip
    if c.faithfulness is not None:
        bits.append(f"faithfulness {c.faithfulness:.3f}")
    return " / ".join(parts) + "\n" + "; ".join(bits)


def circuit_dot(circuit: Circuit, *, color_by: str = "sign", title: str | None = None) -> Any:
    """A ``pydot.Dot`` of the circuit.

    >>> from circuits.graph import GraphShape
    >>> c = Circuit(GraphShape(1, 1, 1), {("input", "a0.h0<q>"): -1.0, ("a0.h0", "logits"): 0.5})
    >>> "n_a0_h0 -> n_logits" in circuit_dot(c).to_string()
    True
    """
    if color_by not in ("sign", "qkv"):
        raise InputError(f"color_by is 'sign' or 'qkv', not {color_by!r}")

    def styler(sender: str, receiver: str, qkv: str, score: float) -> dict[str, str]:
        sign = "neg" if score < 0 else "pos"
        if color_by == "sign":
            return {"color": _q(SIGN_COLOURS[sign]), "arrowhead": ARROWS[qkv]}
        return {"color": _q(QKV_COLOURS[qkv]), "arrowhead": ARROWS[qkv],
                "style": "solid" if sign == "neg" else "dashed"}  # fmt: skip

    g = _new_graph(title or _title(circuit))
    names = _draw_edges(g, circuit, styler)
    _add_nodes(g, circuit, names, {})
    if color_by == "sign":
        rows = [("negative score (relied on)", SIGN_COLOURS["neg"]), ("positive score", SIGN_COLOURS["pos"])]
    else:
        rows = [(f"into {q}" if q else "into MLP / logits", c) for q, c in QKV_COLOURS.items()]
        rows.append(("dashed: positive score", "#555555"))
    rows += [("arrow: q normal, k diamond, v dot", "#555555"), ("width: |score|", "#555555"),
             ("ellipse head, box MLP", "#555555")]  # fmt: skip
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
        return {"color": _q(colour), "style": style, "arrowhead": ARROWS[qkv]}

    counts = {k: sum(1 for v in where.values() if v == k) for k in DIFF_STYLES}
    g = _new_graph(f"{la} vs {lb}\n{counts['shared']} shared, {counts['a']} only in {la}, "
                   f"{counts['b']} only in {lb}")  # fmt: skip
    names = _draw_edges(g, merged, styler)
    _add_nodes(g, merged, names, {})
    _legend(g, [(f"shared ({counts['shared']}, solid)", DIFF_STYLES["shared"][0]),
                (f"only in {la} ({counts['a']}, dashed)", DIFF_STYLES["a"][0]),
                (f"only in {lb} ({counts['b']}, dotted)", DIFF_STYLES["b"][0]),
                ("width: |score| (A's where shared)", "#555555")])  # fmt: skip
    return g


@dataclass
class Rendered:
    """What :func:`render` wrote, and the formats it could not produce (with why)."""

    written: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    message: str = ""


def render(graph: Any, path: str | Path, *, formats: tuple[str, ...] = ("svg",)) -> Rendered:
    """Write ``path.dot`` and, with Graphviz's ``dot`` on the PATH, ``path.svg`` / ``path.png``.

    A ``.dot``, ``.svg`` or ``.png`` suffix of ``path`` is replaced. Files are written atomically. Without
    ``dot`` the DOT file is still written and ``message`` says how to install Graphviz.
    """
    from circuits.store import atomic_write_bytes, atomic_write_text

    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    stem = Path(path)
    if stem.suffix in (".dot", ".svg", ".png"):
        stem = stem.with_suffix("")
    text = graph.to_string()
    out = Rendered()
    atomic_write_text(_at(stem, "dot"), text)
    out.written.append(_at(stem, "dot"))
    images = [f for f in dict.fromkeys(formats) if f != "dot"]
    exe = shutil.which("dot")
    if images and exe is None:
        out.missing, out.message = images, GRAPHVIZ_HINT
        log.warning("%s", GRAPHVIZ_HINT)
        return out
    for fmt in images:
        done = subprocess.run([exe, f"-T{fmt}"], input=text.encode(), capture_output=True, check=False)  # type: ignore[list-item]
        if done.returncode != 0:
            raise CircuitsError(f"dot -T{fmt} failed on {_at(stem, 'dot')}: "
                                f"{done.stderr.decode(errors='replace').strip()[:500]}")  # fmt: skip
        atomic_write_bytes(_at(stem, fmt), done.stdout)
        out.written.append(_at(stem, fmt))
    return out


def _at(stem: Path, ext: str) -> Path:
    return stem.parent / f"{stem.name}.{ext}"


def _colour(value: float, low: float) -> str:
    """White to blue for ``[0, 1]``; red below 0 when the scale starts at -1; grey for NaN."""
    if math.isnan(value):
        return "#dddddd"
    v = max(low, min(1.0, value))
    if v >= 0:
        r, g, b = (int(255 + (t - 255) * v) for t in (33, 102, 172))
    else:
        r, g, b = (int(255 + (t - 255) * -v) for t in (178, 24, 43))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_svg(matrix: Any, *, title: str | None = None, clustering: Any = None, cell: int = 34) -> str:
    """An SVG heatmap of a :class:`~circuits.compare.ReuseMatrix`, rows ordered by ``clustering``.

    With a clustering, its dendrogram is drawn above the columns.

    >>> from circuits.compare import ReuseMatrix
    >>> svg = heatmap_svg(ReuseMatrix(["a", "b"], np.array([[1, .5], [.5, 1]]), "edge_jaccard"))
    >>> svg.startswith("<svg") and svg.count("<rect") == 5
    True
    """
    names = list(matrix.names)
    values = np.asarray(matrix.values, dtype=float)
    dendro = None
    if clustering is not None and clustering.linkage:
        from scipy.cluster.hierarchy import dendrogram

        dendro = dendrogram(np.asarray(clustering.linkage), no_plot=True, labels=names)
        order = [names.index(n) for n in dendro["ivl"]]
    else:
        order = list(range(len(names)))
    low = -1.0 if np.nanmin(values, initial=0.0) < 0 else 0.0
    label_w = 8 + 7 * max((len(n) for n in names), default=1)
    tree_h = 70 if dendro else 0
    top = 30 + tree_h + label_w
    width, height = label_w + cell * len(names) + 20, top + cell * len(names) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
           f'<text x="8" y="18" font-size="13">{escape(title or matrix.metric)}</text>']  # fmt: skip
    for col, j in enumerate(order):
        x = label_w + col * cell + cell / 2
        out.append(
            f'<text transform="translate({x + 4:.1f},{top - 4}) rotate(-90)">{escape(names[j])}</text>'
        )
    for row, i in enumerate(order):
        y = top + row * cell
        out.append(
            f'<text x="{label_w - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{escape(names[i])}</text>'
        )
        for col, j in enumerate(order):
            v = values[i, j]
            x = label_w + col * cell
            text = "" if math.isnan(v) else f"{v:.2f}"
            ink = "white" if not math.isnan(v) and abs(v) > 0.6 else "black"
            out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_colour(v, low)}" '
                       f'stroke="white"><title>{escape(names[i])} / {escape(names[j])}: {text or "n/a"}</title></rect>'
                       f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                       f'font-size="9" fill="{ink}">{text}</text>')  # fmt: skip
    if dendro:
        peak = max((max(d) for d in dendro["dcoord"]), default=1.0) or 1.0
        base = 30 + tree_h
        for xs, ys in zip(dendro["icoord"], dendro["dcoord"], strict=True):
            points = " ".join(f"{label_w + (x - 5) / 10 * cell + cell / 2:.1f},{base - y / peak * (tree_h - 8):.1f}"
                              for x, y in zip(xs, ys, strict=True))  # fmt: skip
            out.append(f'<polyline points="{points}" fill="none" stroke="#444444"/>')
    out.append(f'<text x="8" y="{height - 14}" font-size="9" fill="#666666">'
               f'{escape(matrix.metric)}; scale {low:g} (red) .. 0 (white) .. 1 (blue)</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out) + "\n"
