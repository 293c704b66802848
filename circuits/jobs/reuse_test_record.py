"""The causal reuse test's record (``reuse_test.json``): :class:`ReuseTestRecord` and its rows.

Conditions: ``before`` (no ablation), ``core`` (the shared core ablated),
``core_matched`` (as many core heads as the relation has specific ones),
``specific`` (the relation's own heads), ``random`` (heads outside its circuit
and the core). Each metric of :data:`~circuits.mechanisms.interventions.METRICS`
has an interval per condition and per drop (``before −`` condition, and
``core_vs_specific``, ``matched_vs_specific``). ``to_dict()`` is the layout of
``reuse_test.json`` (the report and :func:`~circuits.draw.reuse_test_figure`
read it); ``from_dict()`` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from circuits.jobs.dict_access import DictAccess
from circuits.records.base import interval
from circuits.uncertainty import Interval

__all__ = ["CONDITIONS", "RULES", "ReuseTestMeasures", "ReuseTestRecord", "ReuseTestRow"]

CONDITIONS = ("before", "core", "core_matched", "specific", "random")

HEAD_RULE = (
    "a head is in a circuit when it sends one of its edges (a{l}.h{h}) or receives one at its query "
    "input (a{l}.h{h}<q>); <k>/<v> receivers name key/value heads, which stand for single query heads "
    "only without grouped-query attention"
)
SPECIFIC_RULE = (
    "specific heads: the relation's circuit heads outside the core, ranked by their total |edge score| "
    "in the relation's scored graph (every edge they send or receive), as many as the core has"
)
RANDOM_RULE = (
    "random heads: drawn (seeded) from the heads outside the relation's circuit and the core, "
    "as many as the core has"
)
MATCHED_RULE = (
    "core_matched: the core heads with the largest total |edge score| in the relation's "
    "scored graph, as many as its specific heads (a size-matched comparison)"
)
DROP_RULE = (
    "before − after (positive: the ablation hurts), 95% paired bootstrap interval over prompts; "
    "core_vs_specific = drop(core) − drop(specific), matched_vs_specific = drop(core_matched) − "
    "drop(specific)"
)
SPLIT_RULE = "heldout (the circuit's own split: no prompt was used to find the circuit)"
RULES = {
    "head_rule": HEAD_RULE,
    "specific_rule": SPECIFIC_RULE,
    "random_rule": RANDOM_RULE,
    "matched_rule": MATCHED_RULE,
    "drop": DROP_RULE,
    "split": SPLIT_RULE,
}
"""How each set of heads is chosen and what a drop is, stored with every record under these keys."""


@dataclass(frozen=True)
class ReuseTestMeasures:
    """Every metric under every condition, and the drops, over one set of prompts.

    ``values[metric][condition]`` and ``drops[metric][name]`` are intervals
    (``name``: a condition other than ``before``, ``core_vs_specific`` or
    ``matched_vs_specific``).
    """

    n_prompts: int
    values: dict[str, dict[str, Interval]]
    drops: dict[str, dict[str, Interval]]

    def value(self, metric: str, condition: str) -> Interval:
        return self.values[metric][condition]

    def drop(self, metric: str, name: str) -> Interval:
        return self.drops[metric][name]

    def measures_dict(self) -> dict[str, Any]:
        """``{metric: {condition: interval}, "drop_<metric>": {name: interval}}``, metric by metric."""
        out: dict[str, Any] = {}
        for metric, by_condition in self.values.items():
            out[metric] = {c: iv.as_dict() for c, iv in by_condition.items()}
            out[f"drop_{metric}"] = {n: iv.as_dict() for n, iv in self.drops[metric].items()}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"n_prompts": self.n_prompts, **self.measures_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReuseTestMeasures:
        metrics = [k.removeprefix("drop_") for k in data if k.startswith("drop_")]
        return cls(
            int(data["n_prompts"]),
            {m: {str(k): interval(v) for k, v in data[m].items()} for m in metrics},
            {m: {str(k): interval(v) for k, v in data[f"drop_{m}"].items()} for m in metrics},
        )


@dataclass(frozen=True)
class ReuseTestRow:
    """One relation of the reuse test: which heads each condition ablated, and what it measured."""

    relation: str
    circuit: str
    n_scoring_prompts: int
    n_circuit_heads: int
    n_core: int
    n_core_in_circuit: int
    n_specific_available: int
    specific_heads: list[str]
    core_matched_heads: list[str]
    random_heads: list[str]
    heads_ranked_by: str
    measures: ReuseTestMeasures
    seconds: float = 0.0

    @property
    def n_prompts(self) -> int:
        """The held-out prompts measured on."""
        return self.measures.n_prompts

    @property
    def n_specific(self) -> int:
        return len(self.specific_heads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "circuit": self.circuit,
            "n_prompts": self.n_prompts,
            "n_scoring_prompts": self.n_scoring_prompts,
            "n_circuit_heads": self.n_circuit_heads,
            "n_core": self.n_core,
            "n_core_in_circuit": self.n_core_in_circuit,
            "n_specific_available": self.n_specific_available,
            "n_specific": self.n_specific,
            "specific_heads": list(self.specific_heads),
            "core_matched_heads": list(self.core_matched_heads),
            "random_heads": list(self.random_heads),
            "heads_ranked_by": self.heads_ranked_by,
            **self.measures.measures_dict(),
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReuseTestRow:
        return cls(
            relation=str(data["relation"]),
            circuit=str(data["circuit"]),
            n_scoring_prompts=int(data["n_scoring_prompts"]),
            n_circuit_heads=int(data["n_circuit_heads"]),
            n_core=int(data["n_core"]),
            n_core_in_circuit=int(data["n_core_in_circuit"]),
            n_specific_available=int(data["n_specific_available"]),
            specific_heads=[str(h) for h in data["specific_heads"]],
            core_matched_heads=[str(h) for h in data["core_matched_heads"]],
            random_heads=[str(h) for h in data["random_heads"]],
            heads_ranked_by=str(data["heads_ranked_by"]),
            measures=ReuseTestMeasures.from_dict(data),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass
class ReuseTestRecord(DictAccess):
    """What :func:`~circuits.jobs.interventions.run_reuse_test` found (``reuse_test.json``).

    ``core`` holds the heads in at least ``k`` of the ``n_circuits`` circuits
    (``circuits``: relation -> stored circuit name; ``circuit``: the name asked
    for, ``None`` for each relation's newest), ``head_counts`` how many
    circuits use each head; ``relations`` one row per relation and ``pooled``
    every relation's prompts together. The ``*_rule`` texts say how each set
    of heads was chosen, as stored with the record.
    """

    model: str
    gallery: str
    circuit: str | None
    circuits: dict[str, str]
    ablation: str
    fraction: float
    k: int
    core: list[str]
    head_counts: dict[str, int]
    max_pairs: int | None
    relations: list[ReuseTestRow]
    pooled: ReuseTestMeasures
    n_boot: int
    seed: int
    seconds: float = 0.0
    rules: dict[str, str] = field(default_factory=lambda: dict(RULES))

    @property
    def n_circuits(self) -> int:
        return len(self.circuits)

    def to_dict(self) -> dict[str, Any]:
        """The layout of ``reuse_test.json``."""
        return {
            "analysis": "reuse_test",
            "model": self.model,
            "gallery": self.gallery,
            "circuit": self.circuit,
            "circuits": dict(self.circuits),
            "ablation": self.ablation,
            "fraction": self.fraction,
            "k": self.k,
            "n_circuits": self.n_circuits,
            "core": list(self.core),
            "head_counts": dict(self.head_counts),
            **self.rules,
            "max_pairs": self.max_pairs,
            "relations": [row.to_dict() for row in self.relations],
            "pooled": self.pooled.to_dict(),
            "n_boot": self.n_boot,
            "seed": self.seed,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReuseTestRecord:
        """A record from :meth:`to_dict`'s layout (a stored ``reuse_test.json``)."""
        max_pairs = data.get("max_pairs")
        return cls(
            model=str(data["model"]),
            gallery=str(data["gallery"]),
            circuit=None if data.get("circuit") is None else str(data["circuit"]),
            circuits={str(k): str(v) for k, v in data["circuits"].items()},
            ablation=str(data["ablation"]),
            fraction=float(data["fraction"]),
            k=int(data["k"]),
            core=[str(h) for h in data["core"]],
            head_counts={str(h): int(n) for h, n in data["head_counts"].items()},
            max_pairs=None if max_pairs is None else int(max_pairs),
            relations=[ReuseTestRow.from_dict(r) for r in data["relations"]],
            pooled=ReuseTestMeasures.from_dict(data["pooled"]),
            n_boot=int(data["n_boot"]),
            seed=int(data["seed"]),
            seconds=float(data.get("seconds", 0.0)),
            rules={k: str(data.get(k, v)) for k, v in RULES.items()},
        )
