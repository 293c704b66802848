"""What ``circuits compare`` finds about two stored circuits: :class:`CircuitComparison`.

Its ``to_dict()`` is the JSON ``circuits compare --json`` has always printed
(:func:`~circuits.compare.compare`'s dictionary, then ``noise`` and ``diff``
where they were asked for); ``from_dict()`` reads it back to the same JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from circuits.compare.similarity import METRICS
from circuits.jobs.noise_record import CompareNoise
from circuits.records.stored import DictAccess, read_stored

__all__ = ["CircuitComparison", "UnitCounts"]


@dataclass(frozen=True)
class UnitCounts:
    """The (edge, role) units of two position-aware circuits, and how many they share."""

    units_a: int
    units_b: int
    common_units: int


@dataclass
class CircuitComparison(DictAccess):
    """Two circuits' sizes, every similarity of :data:`~circuits.compare.METRICS`, their common heads.

    ``a`` and ``b`` are the circuits' labels; ``units`` is set when both are
    position-aware (the similarities then compare units); ``heads_of_a_in_b``
    is the share of ``a``'s heads that ``b`` keeps; ``noise`` holds each
    similarity's interval, ceilings and null, or why there are none
    (``None``: not asked for); ``diff`` the diff diagram's files.
    """

    a: str
    b: str
    edges_a: int
    edges_b: int
    nodes_a: int
    nodes_b: int
    common_edges: int
    similarities: dict[str, float]
    common_heads: list[str]
    heads_of_a_in_b: float
    heads_of_b_in_a: float
    units: UnitCounts | None = None
    noise: CompareNoise | None = None
    diff: list[str] | None = None

    def measure(self, name: str) -> float | int | None:
        """A count (``common_edges``, ``common_units``, ...), a similarity or a head share by name."""
        if name in self.similarities:
            return self.similarities[name]
        if name in ("units_a", "units_b", "common_units"):
            return None if self.units is None else int(getattr(self.units, name))
        value = getattr(self, name, None)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "a": self.a,
            "b": self.b,
            "edges_a": self.edges_a,
            "edges_b": self.edges_b,
            "nodes_a": self.nodes_a,
            "nodes_b": self.nodes_b,
            "common_edges": self.common_edges,
        }
        if self.units is not None:
            u = self.units
            out.update({"units_a": u.units_a, "units_b": u.units_b, "common_units": u.common_units})
        out.update(self.similarities)
        out["common_heads"] = list(self.common_heads)
        out["heads_of_a_in_b"] = self.heads_of_a_in_b
        out["heads_of_b_in_a"] = self.heads_of_b_in_a
        if self.noise is not None:
            out["noise"] = self.noise.to_dict()
        if self.diff is not None:
            out["diff"] = list(self.diff)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "") -> CircuitComparison:
        """A comparison from :meth:`to_dict`'s layout (:func:`~circuits.compare.compare`'s dictionary)."""
        return read_stored("circuit comparison", data, cls._read, source=source)

    @classmethod
    def _read(cls, data: Mapping[str, Any]) -> CircuitComparison:
        units = None
        if "common_units" in data:
            units = UnitCounts(int(data["units_a"]), int(data["units_b"]), int(data["common_units"]))
        noise, diff = data.get("noise"), data.get("diff")
        return cls(
            a=str(data["a"]),
            b=str(data["b"]),
            edges_a=int(data["edges_a"]),
            edges_b=int(data["edges_b"]),
            nodes_a=int(data["nodes_a"]),
            nodes_b=int(data["nodes_b"]),
            common_edges=int(data["common_edges"]),
            similarities={str(k): float(v) for k, v in data.items() if k in METRICS},
            common_heads=[str(h) for h in data["common_heads"]],
            heads_of_a_in_b=float(data["heads_of_a_in_b"]),
            heads_of_b_in_a=float(data["heads_of_b_in_a"]),
            units=units,
            noise=None if noise is None else CompareNoise.from_dict(noise),
            diff=None if diff is None else [str(p) for p in diff],
        )
