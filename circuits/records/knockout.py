"""The attention knockout's settings and record (torch-free).

The analysis is :mod:`circuits.mechanisms.attention_knockout`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from circuits.records.base import AnalysisRecord, AnalysisSettings, Provenance, interval, intervals, shown
from circuits.uncertainty import Interval
from circuits.vocab import InputError

__all__ = ["KnockoutCurve", "KnockoutRecord", "KnockoutSettings"]

EFFECT = "(p_knock - p) / p of the answer, mean over prompts, 95% bootstrap interval"


@dataclass(frozen=True)
class KnockoutSettings(AnalysisSettings):
    """Which windows and source sets are blocked."""

    window: int | None = field(
        default=None,
        metadata={"help": "layers per window (default round(n_layers / 5); Geva used 9 of 48)", "min": 1},
    )
    sources: str = field(
        default="subject,relation,last",
        metadata={
            "help": "comma-separated source sets; roles first, demo, subject, relation, last, joined with "
            "'+' or 'all' (default subject,relation,last)"
        },
    )
    block_first: bool = field(
        default=False,
        metadata={"help": "also block the first token (the attention sink), reported separately"},
    )


def _span(start: int, window: int) -> str:
    if window == 0:
        return f"{start} (none)"
    return str(start) if window == 1 else f"{start}-{start + window - 1}"


@dataclass
class KnockoutCurve:
    """The knockout effect of one source set, per window (``per_prompt`` is kept in memory only)."""

    source: str
    starts: list[int]
    effect: list[Interval]
    n_prompts: int
    skipped: list[str] = field(default_factory=list)
    per_prompt: np.ndarray | None = field(default=None, repr=False, compare=False)  # [prompts, windows]

    def strongest(self) -> tuple[int, Interval]:
        """The window start where blocking hurts most (most negative mean effect)."""
        i = int(np.argmin([e.value for e in self.effect]))
        return self.starts[i], self.effect[i]

    def to_dict(self) -> dict[str, Any]:
        start, worst = self.strongest()
        return {
            "source": self.source,
            "n_prompts": self.n_prompts,
            "n_skipped": len(self.skipped),
            "skipped": self.skipped,
            "window_starts": self.starts,
            "effect": [e.as_dict() for e in self.effect],
            "strongest": {"start": start, "effect": worst.as_dict()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KnockoutCurve:
        return cls(
            str(data["source"]),
            [int(s) for s in data["window_starts"]],
            intervals(data["effect"]),
            int(data["n_prompts"]),
            [str(s) for s in data.get("skipped", [])],
        )


@dataclass
class KnockoutRecord(AnalysisRecord):
    """Knockout curves of every source set on one relation's prompts."""

    NAME: ClassVar[str] = "knockout"
    VERSION: ClassVar[int] = 1

    n_layers: int
    window: int
    baseline_prob: Interval
    curves: list[KnockoutCurve]
    sink: KnockoutCurve | None
    n_forwards: int

    def curve(self, source: str) -> KnockoutCurve:
        for c in self.all_curves():
            if c.source == source:
                return c
        raise InputError(f"no knockout curve for {source!r}; have {[c.source for c in self.curves]}")

    def all_curves(self) -> list[KnockoutCurve]:
        """The source sets' curves, then the attention sink's when it was blocked."""
        return [*self.curves, *([self.sink] if self.sink else [])]

    def description(self) -> str:
        return EFFECT

    def own_dict(self) -> dict[str, Any]:
        return {
            "n_layers": self.n_layers,
            "window": self.window,
            "baseline_prob": self.baseline_prob.as_dict(),
            "effect": EFFECT,
            "curves": [c.to_dict() for c in self.curves],
            "sink": None if self.sink is None else self.sink.to_dict(),
            "n_forwards": self.n_forwards,
        }

    @classmethod
    def read_own(cls, data: Mapping[str, Any], provenance: Provenance) -> KnockoutRecord:
        sink = data.get("sink")
        return cls(
            provenance,
            int(data["n_layers"]),
            int(data["window"]),
            interval(data["baseline_prob"]),
            [KnockoutCurve.from_dict(c) for c in data["curves"]],
            None if sink is None else KnockoutCurve.from_dict(sink),
            int(data.get("n_forwards", 0)),
        )

    def summary_lines(self, top: int | None = None) -> list[str]:
        curves = self.all_curves()
        text = [
            self.provenance.heading(),
            f"baseline p(answer) {self.baseline_prob}; window of {self.window} "
            f"layer{'' if self.window == 1 else 's'}; "
            f"effect = (p_knock - p) / p, mean [95% bootstrap interval]",
        ]
        for c in curves:
            if c.skipped:
                skipped = f"skipped {len(c.skipped)} prompts with an empty role, e.g. {c.skipped[0]!r}"
                text.append(f"  {c.source}: {skipped}")
        text.append(f"{'layers':>9}" + "".join(f"{c.source:>22}" for c in curves))
        for i, start in enumerate(curves[0].starts if curves else []):
            span = _span(start, self.window)
            text.append(f"{span:>9}" + "".join(f"{c.effect[i].format(2):>22}" for c in curves))
        for c in curves:
            start, effect = c.strongest()
            text.append(f"strongest for {c.source}: layers {_span(start, self.window)}, effect {effect}")
        return text

    def finding(self) -> str:
        parts = []
        for curve in self.curves:
            if curve.effect:
                start, effect = curve.strongest()
                end = start + self.window - 1
                parts.append(f"{curve.source} at layers {start}-{end}: {shown(effect)}")
        return "strongest drop of p(answer) when the last position cannot read " + "; ".join(parts)
