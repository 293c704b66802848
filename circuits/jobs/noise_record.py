"""The noise references as the jobs store them: similarity rows, a sweep's ceilings, a comparison's.

:class:`SimilarityRow` is one similarity of two relations' circuits with the
references it is read against (the stored
:meth:`~circuits.compare.noise.Similarity.as_dict`: interval, split-half
ceilings, matched value, relative value, permutation null and p);
:class:`ReuseNoise` is a reuse sweep's ``report.json`` ``noise`` (the stored
:meth:`~circuits.compare.ceilings.FamilyNoise.as_dict`) and
:class:`CompareNoise` the ``noise`` of ``circuits compare`` (or why there is
none). Each ``to_dict()`` is the stored layout and ``from_dict()`` reads it
back, to the same JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from circuits.compare.ceilings import NoiseSettings
from circuits.records.stored import Estimate, stored

__all__ = ["CompareNoise", "ReuseNoise", "SimilarityRow", "noise_settings", "settings_dict"]


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def noise_settings(data: Mapping[str, Any]) -> NoiseSettings:
    """The stored ``settings`` of a noise record (``top_edges``: :attr:`NoiseSettings.top`)."""
    return NoiseSettings(
        int(data["n_boot"]),
        int(data["n_splits"]),
        int(data["n_perm"]),
        int(data["seed"]),
        int(data["top_edges"]),
    )


def settings_dict(s: NoiseSettings) -> dict[str, Any]:
    """:func:`noise_settings`'s input: the settings as stored."""
    return {
        "n_boot": s.n_boot,
        "n_splits": s.n_splits,
        "n_perm": s.n_perm,
        "seed": s.seed,
        "top_edges": s.top,
    }


def _ceilings(data: Mapping[str, Any]) -> dict[str, dict[str, Estimate]]:
    return {str(r): {str(m): Estimate.read(iv) for m, iv in c.items()} for r, c in data.items()}  # type: ignore[misc]


def _ceilings_dict(ceilings: dict[str, dict[str, Estimate]]) -> dict[str, Any]:
    return {r: {m: stored(iv) for m, iv in c.items()} for r, c in ceilings.items()}


@dataclass(frozen=True)
class SimilarityRow:
    """One similarity of ``a``'s and ``b``'s circuits and its references, as stored.

    ``interval`` is the similarity with its bootstrap interval; ``ceiling_a``
    and ``ceiling_b`` the split-half ceilings; ``matched`` the half-sample
    similarity, ``relative`` ``matched / sqrt(ceiling_a * ceiling_b)``
    (``None``: undefined); ``null`` the permutation null, ``p`` the share of
    shuffles at or below the observed value.
    """

    a: str
    b: str
    metric: str
    interval: Estimate
    ceiling_a: Estimate | None = None
    ceiling_b: Estimate | None = None
    matched: float | None = None
    relative: float | None = None
    null: Estimate | None = None
    p: float | None = None

    @property
    def value(self) -> float | None:
        return self.interval.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            **self.interval.to_stored(),  # type: ignore[dict-item]
            "ceiling_a": stored(self.ceiling_a),
            "ceiling_b": stored(self.ceiling_b),
            "matched": self.matched,
            "relative": self.relative,
            "null": stored(self.null),
            "p": self.p,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimilarityRow:
        interval = Estimate(_float(data["value"]), _float(data.get("low")), _float(data.get("high")))
        return cls(
            a=str(data["a"]),
            b=str(data["b"]),
            metric=str(data["metric"]),
            interval=interval,
            ceiling_a=Estimate.read(data.get("ceiling_a")),
            ceiling_b=Estimate.read(data.get("ceiling_b")),
            matched=_float(data.get("matched")),
            relative=_float(data.get("relative")),
            null=Estimate.read(data.get("null")),
            p=_float(data.get("p")),
        )


@dataclass(frozen=True)
class ReuseNoise:
    """A reuse sweep's noise references: each relation's ceilings, each pair's similarity rows.

    ``ceilings[relation][similarity]`` is the relation's split-half ceiling;
    ``pairs`` holds one mapping per pair of relations, similarity -> row.
    """

    settings: NoiseSettings
    ceilings: dict[str, dict[str, Estimate]]
    pairs: list[dict[str, SimilarityRow]]

    def rows(self, similarity: str) -> list[SimilarityRow]:
        """Every pair's row of ``similarity``, in the stored order."""
        return [p[similarity] for p in self.pairs if similarity in p]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": settings_dict(self.settings),
            "ceilings": _ceilings_dict(self.ceilings),
            "pairs": [{m: row.to_dict() for m, row in p.items()} for p in self.pairs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReuseNoise:
        return cls(
            noise_settings(data["settings"]),
            _ceilings(data["ceilings"]),
            [{str(m): SimilarityRow.from_dict(r) for m, r in p.items()} for p in data["pairs"]],
        )


@dataclass(frozen=True)
class CompareNoise:
    """Two circuits' noise references (``circuits compare``), or why there are none (``skipped``).

    ``ceilings`` is keyed ``"A"`` and ``"B"``; ``similarities`` maps each
    similarity (and ``spearman``) to its row.
    """

    settings: NoiseSettings | None = None
    ceilings: dict[str, dict[str, Estimate]] | None = None
    similarities: dict[str, SimilarityRow] | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped}
        return {
            "settings": None if self.settings is None else settings_dict(self.settings),
            "ceilings": _ceilings_dict(self.ceilings or {}),
            "similarities": {m: row.to_dict() for m, row in (self.similarities or {}).items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompareNoise:
        if "skipped" in data:
            return cls(skipped=str(data["skipped"]))
        return cls(
            noise_settings(data["settings"]),
            _ceilings(data["ceilings"]),
            {str(m): SimilarityRow.from_dict(r) for m, r in data["similarities"].items()},
        )
