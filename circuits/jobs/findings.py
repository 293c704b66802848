"""One-line findings of the mechanism analyses, read from their stored records (torch-free).

The main job prints these in its summary; each names the number it rests on
with its 95% interval, so a reader knows where to look in the figure.
"""

from __future__ import annotations

from typing import Any

from circuits.uncertainty import format_stored as _iv

__all__ = ["finding"]


def _knockout(r: dict[str, Any]) -> str:
    parts = []
    for curve in r.get("curves", []):
        s = curve.get("strongest")
        if s:
            parts.append(
                f"{curve['source']} at layers {s['start']}-{s['start'] + r['window'] - 1}: {_iv(s['effect'])}"
            )
    return "strongest drop of p(answer) when the last position cannot read " + "; ".join(parts)


def _enrichment(r: dict[str, Any]) -> str:
    peak = r.get("peak") or {}
    return f"attribute rate at the last subject token peaks after layer {peak.get('layer')}: {_iv(peak.get('rate'))}"


def _extraction(r: dict[str, Any]) -> str:
    any_event = r.get("any_event") or {}
    heads = ", ".join(h["head"] for h in (r.get("top_heads_by_output") or [])[:3])
    return (
        f"an attention sublayer puts the answer first on {100 * any_event.get('attn', 0):.0f}% of prompts, "
        f"an MLP on {100 * any_event.get('mlp', 0):.0f}%; top heads {heads}"
    )


def _dla(r: dict[str, Any]) -> str:
    counts = r.get("counts") or {}
    top = (r.get("top_heads") or [{}])[0]
    return (
        f"{counts.get('subject', 0)} subject, {counts.get('relation', 0)} relation, {counts.get('mixed', 0)} "
        f"mixed heads; strongest {top.get('head')} ({top.get('class')}) {_iv(top.get('dla'))}"
    )


def _motif(r: dict[str, Any]) -> str:
    return (
        f"additive motif (no group alone, their sum ranks the answer first) on {_iv(r.get('motif'))} of "
        f"prompts; the sum ranks it first on {_iv((r.get('top1') or {}).get('sum'))}"
    )


def _mlp(r: dict[str, Any]) -> str:
    top = (r.get("top_moving") or [None])[0]
    if top is None:
        return "no subject-moving head"
    name = top if isinstance(top, str) else top.get("head", str(top))
    push = (r.get("moving_total_push") or {}).get(name)
    return f"subject-moving head {name}: the MLPs' parts along its output push the answer by {_iv(push)}"


_FINDERS = {
    "knockout": _knockout,
    "enrichment": _enrichment,
    "extraction": _extraction,
    "dla": _dla,
    "motif": _motif,
    "mlp": _mlp,
}


def finding(analysis: str, record: dict[str, Any]) -> str:
    """The one-line finding of an analysis record (``""`` for an analysis without one).

    >>> finding("enrichment", {"peak": {"layer": 3, "rate": {"value": 0.25, "low": 0.2, "high": 0.3}}})
    'attribute rate at the last subject token peaks after layer 3: 0.25 [0.20, 0.30]'
    """
    finder = _FINDERS.get(analysis)
    if finder is None:
        return ""
    try:
        return finder(record)
    except (KeyError, TypeError, ValueError):  # a record of another version: no finding rather than no job
        return ""
