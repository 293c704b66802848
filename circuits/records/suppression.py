"""Final-layer suppression's settings and record (torch-free); the analysis is in `mechanisms.suppressors`.

Suppression runs across several relations (its record's ``relation`` joins
their names) and is stored per model, in ``<model>/suppression/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from circuits.records.base import AnalysisRecord, AnalysisSettings, Provenance, interval, read_map
from circuits.uncertainty import Interval

__all__ = ["DirectEffect", "Mitigation", "SuppressionRecord", "SuppressionSettings", "joined"]

METRICS = ("accuracy", "answer_prob")
CONTROL = "mean next-token loss (nats) on full sentences of relations not analysed"


def _share(default: float, text: str) -> Any:
    return field(default=default, metadata={"help": text, "range": (0.0, 1.0)})


@dataclass(frozen=True)
class SuppressionSettings(AnalysisSettings):
    """Which layers are examined, what makes a suppressor, and the mitigation and its control."""

    last_layers: int = field(
        default=2, metadata={"help": "how many final layers to examine (default 2)", "min": 1}
    )
    alpha: float = _share(0.5, "scale of the suppressors, in [0, 1] (default 0.5)")
    majority: float = _share(
        0.5,
        "a component suppresses on a relation when negative on more than this share of its prompts "
        "(default 0.5)",
    )
    relations_share: float = _share(
        0.5, "... and is a suppressor when it does on at least this share of the relations (default 0.5)"
    )
    heldout_fraction: float = _share(
        0.4, "share of each relation's pairs held out to measure the mitigation (default 0.4)"
    )
    n_control: int = field(
        default=64,
        metadata={
            "help": "control sentences from relations not analysed (default 64)",
            "min": 1,
            "flag": "--control",
            "metavar": "N",
        },
    )

    def heldout(self) -> float:
        return self.heldout_fraction


def joined(relations: list[str]) -> str:
    """The record's ``relation``: the names joined by ``+`` (up to three), else their number.

    >>> joined(["a", "b"]), joined(["a", "b", "c", "d"])
    ('a+b', '4 relations')
    """
    return "+".join(relations) if len(relations) <= 3 else f"{len(relations)} relations"


@dataclass(frozen=True)
class DirectEffect:
    """One component's direct effect on the answer on one relation."""

    name: str
    effect: Interval  # mean over prompts, 95% bootstrap interval
    negative_share: float  # share of prompts where the effect is negative

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.name,
            "effect": self.effect.as_dict(),
            "negative_share": round(self.negative_share, 4),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DirectEffect:
        return cls(str(data["component"]), interval(data["effect"]), float(data["negative_share"]))


@dataclass
class Mitigation:
    """Before and after scaling the suppressors, on a relation's held-out prompts (values in memory only)."""

    n_prompts: int
    before: dict[str, Interval]
    after: dict[str, Interval]
    change: dict[str, Interval]
    before_values: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    after_values: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_prompts": self.n_prompts}
        for when in ("before", "after", "change"):
            out[when] = {k: getattr(self, when)[k].as_dict() for k in METRICS}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mitigation:
        before, after, change = (read_map(data[w], interval) for w in ("before", "after", "change"))
        return cls(int(data["n_prompts"]), before, after, change)


@dataclass
class SuppressionRecord(AnalysisRecord):
    """Last-layer direct effects per relation, the suppressors, and the mitigation with its control."""

    NAME: ClassVar[str] = "suppression"
    VERSION: ClassVar[int] = 1

    relations: list[str]
    layers: list[int]
    alpha: float
    majority: float
    relations_share: float
    effects: dict[str, list[DirectEffect]]  # relation -> components of the last layers
    suppressors: list[str]
    mitigation: dict[str, Mitigation]  # relation -> before/after on its held-out prompts
    control: dict[str, Interval] = field(default_factory=dict)  # loss before, after, change
    control_texts: int = 0

    def suppresses_on(self, name: str) -> list[str]:
        """The relations on which ``name`` is negative on more than ``majority`` of the prompts."""
        return [
            r
            for r, comps in self.effects.items()
            for c in comps
            if c.name == name and c.negative_share > self.majority
        ]

    def description(self) -> str:
        return (
            "direct effect of each component of the last layers on the answer's centred logit at "
            "the last position (scoring prompts); a suppressor is negative on more than "
            f"{self.majority:.0%} of the prompts of at least {self.relations_share:.0%} of the "
            f"relations; mitigation scales suppressors by alpha, measured on held-out prompts"
        )

    def own_dict(self) -> dict[str, Any]:
        return {
            "relations": self.relations,
            "layers": self.layers,
            "alpha": self.alpha,
            "majority": self.majority,
            "relations_share": self.relations_share,
            "definition": self.description(),
            "effects": {r: [c.to_dict() for c in comps] for r, comps in self.effects.items()},
            "suppressors": [{"component": s, "relations": self.suppresses_on(s)} for s in self.suppressors],
            "mitigation": {r: m.to_dict() for r, m in self.mitigation.items()},
            "control": {
                "what": CONTROL,
                "n_texts": self.control_texts,
                **{k: v.as_dict() for k, v in self.control.items()},
            },
        }

    @classmethod
    def read_own(cls, data: Mapping[str, Any], provenance: Provenance) -> SuppressionRecord:
        control = data.get("control") or {}
        return cls(
            provenance,
            [str(r) for r in data["relations"]],
            [int(layer) for layer in data["layers"]],
            float(data["alpha"]),
            float(data["majority"]),
            float(data["relations_share"]),
            {str(r): [DirectEffect.from_dict(c) for c in comps] for r, comps in data["effects"].items()},
            [str(s["component"]) for s in data["suppressors"]],
            read_map(data["mitigation"], Mitigation.from_dict),
            {k: interval(control[k]) for k in ("before", "after", "change") if control.get(k) is not None},
            int(control.get("n_texts", 0)),
        )

    def summary_lines(self, top: int | None = None) -> list[str]:
        names = ", ".join(map(str, self.layers))
        text = [
            f"{self.provenance.model}: last {len(self.layers)} layers ({names}) on "
            f"{len(self.relations)} relations; direct effect on the answer's centred logit, scoring prompts",
            f"suppressors (negative on > {self.majority:.0%} of prompts of >= "
            f"{self.relations_share:.0%} of relations): "
            + (
                ", ".join(
                    f"{s} ({len(self.suppresses_on(s))}/{len(self.relations)})" for s in self.suppressors
                )
                or "none"
            ),
        ]
        for relation, comps in self.effects.items():
            worst = sorted(comps, key=lambda c: c.effect.value)[:3]
            text.append(
                f"  {relation}: most negative "
                + ", ".join(
                    f"{c.name} {c.effect.format(2)} (negative on {c.negative_share:.0%})" for c in worst
                )
            )
        text.append(f"mitigation: suppressors scaled by {self.alpha:g}, held-out prompts")
        text.append(
            f"{'relation':>24}{'n':>4}{'accuracy before':>24}{'after':>20}"
            f"{'p(answer) before':>24}{'after':>20}"
        )
        for relation, m in self.mitigation.items():
            text.append(
                f"{relation:>24}{m.n_prompts:>4}{m.before['accuracy'].format(2):>24}"
                f"{m.after['accuracy'].format(2):>20}{m.before['answer_prob'].format(3):>26}"
                f"{m.after['answer_prob'].format(3):>24}"
            )
        if self.control:
            c = self.control
            text.append(
                f"control: next-token loss on {self.control_texts} other sentences {c['before'].format(3)}"
                f" -> {c['after'].format(3)} nats; change {c['change'].format(3)}"
            )
        return text

    def finding(self) -> str:
        return f"{len(self.suppressors)} suppressors in the last {len(self.layers)} layers"
