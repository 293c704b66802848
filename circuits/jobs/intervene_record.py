"""What ``circuits intervene`` returns and stores as ``intervene.json``: :class:`InterventionRecord`.

``InterventionRecord.to_dict()`` is the layout ``intervene.json`` has always
had (the :meth:`~circuits.mechanisms.interventions.InterventionResult.as_dict`
of the measurement, then ``prompts``: the prompt choice and the pairs'
counts, :class:`InterventionPrompts`); ``from_dict()`` reads it back to the
same JSON. Intervals are :class:`~circuits.records.stored.Estimate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from circuits.records.base import Provenance
from circuits.records.stored import DictAccess, Estimate, read_stored, stored
from circuits.uncertainty import DEFAULT_BOOT

__all__ = ["InterventionPrompts", "InterventionRecord"]

NAME = "intervene"
_COUNTS = ("template", "n_facts", "n_known", "heldout_fraction", "n_pairs", "n_scoring", "n_heldout")


@dataclass(frozen=True)
class InterventionPrompts:
    """Which prompts were measured: the prompt choice, and what the split made of the relation's facts.

    ``choice`` holds the :class:`~circuits.jobs.mechanisms.PromptChoice`'s
    fields as stored; ``n_known`` of ``n_facts`` facts were known, making
    ``n_pairs`` pairs, ``n_scoring`` scoring and ``n_heldout`` held out
    (``heldout_fraction``); ``template`` the template the pairs used.
    """

    choice: dict[str, Any]
    template: str
    n_facts: int
    n_known: int
    heldout_fraction: float
    n_pairs: int
    n_scoring: int
    n_heldout: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.choice,
            "template": self.template,
            "n_facts": self.n_facts,
            "n_known": self.n_known,
            "heldout_fraction": self.heldout_fraction,
            "n_pairs": self.n_pairs,
            "n_scoring": self.n_scoring,
            "n_heldout": self.n_heldout,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InterventionPrompts:
        # the choice keeps the key "template" where the choice had it; its value is the pairs' template
        choice = {k: v for k, v in data.items() if k not in _COUNTS[1:]}
        return cls(
            choice=choice,
            template=str(data["template"]),
            n_facts=int(data["n_facts"]),
            n_known=int(data["n_known"]),
            heldout_fraction=float(data["heldout_fraction"]),
            n_pairs=int(data["n_pairs"]),
            n_scoring=int(data["n_scoring"]),
            n_heldout=int(data["n_heldout"]),
        )


def _estimates(data: Mapping[str, Any]) -> dict[str, Estimate]:
    out = {str(k): Estimate.read(v) for k, v in data.items()}
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise ValueError(f"no estimate of {', '.join(missing)}")
    return out  # type: ignore[return-value]


def _values(data: Mapping[str, Any]) -> dict[str, list[float]]:
    return {str(k): [float(x) for x in v] for k, v in data.items()}


@dataclass
class InterventionRecord(DictAccess):
    """A relation's prompts measured before and after editing a model (``intervene.json``).

    ``edits`` as their specs (``ablate a1.h0:zero``; none: after = before,
    said by ``note``); ``before``, ``after`` and ``change`` map each metric
    (``metrics``: metric -> what it measures) to its mean with a paired 95%
    bootstrap interval over the ``n_prompts`` prompts of ``split``;
    ``before_values``/``after_values`` are the per-prompt values, one per
    subject of ``subjects``; ``prompts`` how the prompts were chosen.
    """

    model: str
    relation: str
    template: str
    split: str
    n_prompts: int
    edits: list[str]
    before: dict[str, Estimate]
    after: dict[str, Estimate]
    change: dict[str, Estimate]
    note: str = ""
    metrics: dict[str, str] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    before_values: dict[str, list[float]] = field(default_factory=dict)
    after_values: dict[str, list[float]] = field(default_factory=dict)
    n_boot: int = DEFAULT_BOOT
    seed: int = 0
    seconds: float = 0.0
    prompts: InterventionPrompts | None = None

    def provenance(self) -> Provenance:
        """The record's :class:`~circuits.records.base.Provenance` (its heading, its title)."""
        return Provenance(
            self.model,
            self.relation,
            self.template,
            prompts={} if self.prompts is None else self.prompts.to_dict(),
            n_prompts=self.n_prompts,
            seed=self.seed,
            n_boot=self.n_boot,
            seconds=self.seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "analysis": NAME,
            "model": self.model,
            "relation": self.relation,
            "template": self.template,
            "split": self.split,
            "n_prompts": self.n_prompts,
            "edits": list(self.edits),
            "note": self.note,
            "metrics": dict(self.metrics),
            "before": {k: stored(v) for k, v in self.before.items()},
            "after": {k: stored(v) for k, v in self.after.items()},
            "change": {k: stored(v) for k, v in self.change.items()},
            "per_prompt": {
                "subjects": list(self.subjects),
                "before": {k: list(v) for k, v in self.before_values.items()},
                "after": {k: list(v) for k, v in self.after_values.items()},
            },
            "n_boot": self.n_boot,
            "seed": self.seed,
            "seconds": self.seconds,
        }
        return out if self.prompts is None else {**out, "prompts": self.prompts.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "") -> InterventionRecord:
        """A record from :meth:`to_dict`'s layout (``source`` names the file in errors)."""
        return read_stored("intervention record", data, cls._read, source=source)

    @classmethod
    def _read(cls, data: Mapping[str, Any]) -> InterventionRecord:
        if data.get("analysis", NAME) != NAME:
            raise ValueError(f"a {data.get('analysis')!r} record, not an {NAME!r} record")
        per = data.get("per_prompt") or {}
        prompts = data.get("prompts")
        return cls(
            model=str(data["model"]),
            relation=str(data["relation"]),
            template=str(data.get("template") or ""),
            split=str(data["split"]),
            n_prompts=int(data["n_prompts"]),
            edits=[str(e) for e in data["edits"]],
            before=_estimates(data["before"]),
            after=_estimates(data["after"]),
            change=_estimates(data["change"]),
            note=str(data.get("note") or ""),
            metrics={str(k): str(v) for k, v in (data.get("metrics") or {}).items()},
            subjects=[str(s) for s in per.get("subjects") or []],
            before_values=_values(per.get("before") or {}),
            after_values=_values(per.get("after") or {}),
            n_boot=int(data.get("n_boot", DEFAULT_BOOT)),
            seed=int(data.get("seed") or 0),
            seconds=float(data.get("seconds") or 0.0),
            prompts=None if prompts is None else InterventionPrompts.from_dict(prompts),
        )
