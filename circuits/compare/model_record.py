"""What a comparison across models holds (torch-free): :class:`ModelComparison` and its rows.

``ModelComparison.to_dict()`` is the layout of ``compare-models/comparison.json``
(the figures and the report's page read it); ``from_dict()`` reads it back to
the same JSON. Per relation a :class:`RelationComparison`: each model's
:class:`ModelCircuit` (its circuit at the target, the share of the graph, the
held-out faithfulness, the depth profile, the faithfulness curve, the
knockout peaks per source role as :class:`KnockoutPeak` and the DLA roles)
and the depth overlaps; across relations the two reuse matrices set against
each other (:class:`ReuseAgreement`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from circuits.records.stored import DictAccess, Estimate, read_stored, stored

__all__ = ["KnockoutPeak", "ModelCircuit", "ModelComparison", "RelationComparison", "ReuseAgreement"]


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def _int(x: Any) -> int | None:
    return None if x is None else int(x)


def _floats(xs: Any) -> list[float | None] | None:
    return None if xs is None else [_float(x) for x in xs]


@dataclass(frozen=True)
class KnockoutPeak:
    """Attention knockout of one source role: its strongest effect, where it lies, and the whole curve.

    ``depth`` is the relative depth of the strongest window's middle;
    ``curve`` the mean effect per window start, ``starts`` those starts as
    relative depths.
    """

    effect: Estimate
    depth: float
    curve: list[float | None]
    starts: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "effect": self.effect.to_stored(),
            "depth": self.depth,
            "curve": list(self.curve),
            "starts": list(self.starts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KnockoutPeak:
        effect = Estimate.read(data["effect"])
        if effect is None:
            raise ValueError("a knockout peak without its effect")
        return cls(
            effect, float(data["depth"]), _floats(data["curve"]) or [], [float(s) for s in data["starts"]]
        )


@dataclass(frozen=True)
class ModelCircuit:
    """One model's results on one relation, as the comparison sets them side by side.

    ``n_edges`` of the circuit at the target (``target_reached`` false: the
    capped circuit), ``share`` of the model's ``graph_edges``, held-out
    ``faithfulness``, the facts known (``n_known`` of ``n_facts``), the graph's
    faithfulness ``curve`` at edge ``fractions``, the circuit's ``depth``
    profile over a model of ``n_layers`` layers, the knockout peaks per source
    role and the DLA head classes (``dla_counts``), where those were run.
    """

    n_edges: int
    n_layers: int
    depth: list[float]
    target_reached: bool | None = None
    faithfulness: Estimate | None = None
    n_known: int | None = None
    n_facts: int | None = None
    graph_edges: int | None = None
    fractions: list[float | None] | None = None
    curve: list[float | None] | None = None
    share: float | None = None
    knockout: dict[str, KnockoutPeak] | None = None
    dla_counts: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n_edges": self.n_edges,
            "target_reached": self.target_reached,
            "faithfulness": stored(self.faithfulness),
            "n_known": self.n_known,
            "n_facts": self.n_facts,
            "graph_edges": self.graph_edges,
            "fractions": None if self.fractions is None else list(self.fractions),
            "curve": None if self.curve is None else list(self.curve),
            "n_layers": self.n_layers,
            "depth": list(self.depth),
        }
        if self.share is not None:
            out["share"] = self.share
        if self.knockout is not None:
            out["knockout"] = {source: peak.to_dict() for source, peak in self.knockout.items()}
        if self.dla_counts is not None:
            out["dla_counts"] = dict(self.dla_counts)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCircuit:
        reached, knockout, counts = data.get("target_reached"), data.get("knockout"), data.get("dla_counts")
        return cls(
            n_edges=int(data["n_edges"]),
            n_layers=int(data["n_layers"]),
            depth=[float(x) for x in data["depth"]],
            target_reached=None if reached is None else bool(reached),
            faithfulness=Estimate.read(data.get("faithfulness")),
            n_known=_int(data.get("n_known")),
            n_facts=_int(data.get("n_facts")),
            graph_edges=_int(data.get("graph_edges")),
            fractions=_floats(data.get("fractions")),
            curve=_floats(data.get("curve")),
            share=_float(data.get("share")),
            knockout=None
            if knockout is None
            else {str(k): KnockoutPeak.from_dict(v) for k, v in knockout.items()},
            dla_counts=None if counts is None else {str(k): int(v) for k, v in counts.items()},
        )


@dataclass(frozen=True)
class RelationComparison:
    """One relation on every model: each model's :class:`ModelCircuit`, and each pair's depth overlap.

    ``depth_overlap`` is keyed ``"<model a>|<model b>"`` (``1 - ½ Σ |p - q|``
    of the two depth profiles).
    """

    relation: str
    models: dict[str, ModelCircuit]
    depth_overlap: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "models": {m: c.to_dict() for m, c in self.models.items()},
            "depth_overlap": dict(self.depth_overlap),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RelationComparison:
        return cls(
            str(data["relation"]),
            {str(m): ModelCircuit.from_dict(c) for m, c in data["models"].items()},
            {str(k): float(v) for k, v in (data.get("depth_overlap") or {}).items()},
        )


@dataclass
class ReuseAgreement(DictAccess):
    """Two models' reuse matrices over the ``relations`` they share, set against each other.

    ``spearman`` is the rank correlation of their off-diagonal entries
    (``None`` where a matrix is constant) with its permutation ``p`` over
    ``n_perm`` label shuffles; ``first_merge`` the pair of relations each
    merges first, ``same_first_merge`` whether they agree; ``matrices`` the
    two matrices over ``relations``.
    """

    relations: list[str]
    spearman: float | None
    p: float | None
    n_perm: int
    first_merge: list[list[str]]
    same_first_merge: bool
    matrices: list[list[list[float]]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "relations": list(self.relations),
            "spearman": self.spearman,
            "p": self.p,
            "n_perm": self.n_perm,
            "first_merge": [list(pair) for pair in self.first_merge],
            "same_first_merge": self.same_first_merge,
            "matrices": [[list(row) for row in m] for m in self.matrices],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReuseAgreement:
        return cls(
            relations=[str(r) for r in data["relations"]],
            spearman=_float(data.get("spearman")),
            p=_float(data.get("p")),
            n_perm=int(data["n_perm"]),
            first_merge=[[str(r) for r in pair] for pair in data["first_merge"]],
            same_first_merge=bool(data["same_first_merge"]),
            matrices=[[[float(x) for x in row] for row in m] for m in data["matrices"]],
        )


@dataclass
class ModelComparison(DictAccess):
    """The comparison of ``models`` (``comparison.json``; ``folder`` only once it is stored).

    ``relations`` holds one :class:`RelationComparison` per relation every
    model has results for; ``reuse`` the :class:`ReuseAgreement` of the first
    two models' reuse matrices (``None``: fewer than three shared relations
    with a matrix in both); ``target`` the faithfulness the circuits were
    chosen to reach; ``depth_bins`` the bins of the depth profiles.
    """

    models: list[str]
    relations: list[RelationComparison]
    reuse: ReuseAgreement | None
    target: float | None
    depth_bins: int
    seed: int
    folder: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "models": list(self.models),
            "relations": [r.to_dict() for r in self.relations],
            "reuse": None if self.reuse is None else self.reuse.to_dict(),
            "target": self.target,
            "depth_bins": self.depth_bins,
            "seed": self.seed,
        }
        return out if self.folder is None else {**out, "folder": self.folder}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "") -> ModelComparison:
        """A comparison from :meth:`to_dict`'s layout (``source`` names the file in errors)."""
        return read_stored("comparison across models", data, cls._read, source=source)

    @classmethod
    def _read(cls, data: Mapping[str, Any]) -> ModelComparison:
        reuse, folder = data.get("reuse"), data.get("folder")
        return cls(
            models=[str(m) for m in data["models"]],
            relations=[RelationComparison.from_dict(r) for r in data["relations"]],
            reuse=None if reuse is None else ReuseAgreement.from_dict(reuse),
            target=_float(data.get("target")),
            depth_bins=int(data["depth_bins"]),
            seed=int(data.get("seed", 0)),
            folder=None if folder is None else str(folder),
        )
