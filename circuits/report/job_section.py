"""The overview's account of the main job (``job.json``): what it found across relations, then every field."""

from __future__ import annotations

from typing import Any

from circuits.report.html import esc, fmt_interval, fmt_num, table, value_html

__all__ = ["job_section"]


def _pair(label: str, p: Any) -> str:
    if not isinstance(p, dict) or "a" not in p:
        return ""
    noise = p.get("noise") if isinstance(p.get("noise"), dict) else {}
    relative = noise.get("relative")
    extra = f"; relative to the two split-half ceilings {fmt_num(relative)}" if relative is not None else ""
    interval = f" {esc(fmt_interval(noise))}" if noise.get("low") is not None else ""
    value = interval or " " + esc(fmt_num(p.get("value")))
    return (
        f"<li><b>{esc(label)}</b>: {esc(p['a'])} and {esc(p.get('b', '—'))}, edge Jaccard{value}"
        f"{esc(extra)}; share of heads {esc(fmt_num(p.get('head_share')))}</li>"
    )


def job_section(job: dict[str, Any], link: str) -> str:
    """What the job found (reuse, core, channels, timing), then every field of ``job.json`` folded away.

    >>> html = job_section({"seconds": 12.5, "stages_run": 3, "stages_reused": 1,
    ...     "reuse": {"most_similar": {"a": "x", "b": "<y>", "value": 0.5, "head_share": 0.2}},
    ...     "channels": [{"relation": "x", "auc_component": 0.7, "auc_whole": 0.6, "precision_component": 0.1,
    ...                   "n_important": 5}]}, "job.json")
    >>> "&lt;y&gt;" in html and "0.70" in html and "3 stages ran" in html
    True
    """
    out = [f'<h3>What the main job found (<a href="{link}">job.json</a>)</h3>']
    if isinstance(job.get("seconds"), int | float):
        ran, reused = esc(fmt_num(job.get("stages_run"))), esc(fmt_num(job.get("stages_reused")))
        seconds = fmt_num(job["seconds"], 0)
        out.append(f"<p>{ran} stages ran and {reused} were read back from disk, in {seconds} s.</p>")
    reuse = job.get("reuse") if isinstance(job.get("reuse"), dict) else {}
    items = [
        _pair("most similar circuits", reuse.get("most_similar")),
        _pair("least similar circuits", reuse.get("least_similar")),
    ]
    core = reuse.get("core")
    if isinstance(core, dict) and "n_edges" in core:
        heads = ", ".join(str(h) for h in (core["heads"] if isinstance(core.get("heads"), list) else [])[:10])
        items.append(
            f"<li><b>shared core</b>: {esc(fmt_num(core['n_edges']))} edges in at least "
            f"{esc(fmt_num(core.get('k')))} circuits; heads {esc(heads)}</li>"
        )
    if any(items):
        out.append("<ul>" + "".join(items) + "</ul>")
    channels = job.get("channels")
    if isinstance(channels, list) and channels and all(isinstance(r, dict) for r in channels):
        out.append(
            "<p>Weight channels against each relation's patching graph (its top 1% edges by |score| "
            "as the positives; AUC 0.5 is chance):</p>"
        )
        rows = [
            [
                r.get("relation"),
                r.get("auc_component"),
                r.get("auc_whole"),
                r.get("precision_component"),
                r.get("n_important"),
            ]
            for r in channels
        ]
        out.append(table(["relation", "AUC, per component", "AUC, whole matrix", "precision@k", "k"], rows))
    out.append(f"<details><summary>Every field of job.json</summary>{value_html(job)}</details>")
    return "\n".join(out)
