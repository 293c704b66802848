"""The MLP decomposition's settings and record (torch-free); the analysis is in `mechanisms.mlp_parts`.

The record of a run holds every component's part in every decomposed MLP;
its file lists only the notable ones (the subject-moving heads and the
components with the largest |push| and |gain| in any MLP), so a record read
back holds those (``complete`` is false) and writes them all again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from circuits.records.base import AnalysisRecord, AnalysisSettings, Provenance, interval, read_map, shown
from circuits.uncertainty import Interval
from circuits.vocab import InputError, mlp_name

__all__ = [
    "POSITIONS",
    "ComponentEffect",
    "LayerDecomposition",
    "MLPRecord",
    "MLPSettings",
    "MovingHead",
    "MovingPart",
    "check_position",
]

POSITIONS = ("last", "subject")
LISTED = 10  # per MLP: components named by push and by gain; the file keeps 2x this by push, this by gain
GAIN = (
    "<MLP_c, x_c> / |x_c|^2: the MLP's part for component c along what c wrote (> 0 amplifies, "
    "< 0 erases); mean over prompts, 95% bootstrap interval"
)
PUSH = "the part's direct effect on the answer's centred logit through the frozen final norm"


def check_position(position: str) -> str:
    """``position`` if it is one of :data:`POSITIONS`, else an :class:`InputError`."""
    if position not in POSITIONS:
        raise InputError(f"unknown position {position!r}; valid: {', '.join(POSITIONS)}")
    return position


@dataclass(frozen=True)
class MLPSettings(AnalysisSettings):
    """Which MLPs are decomposed, and at which position."""

    layers: tuple[int, ...] | None = field(
        default=None,
        metadata={
            "help": "an MLP layer to decompose; repeat it or give a comma list (default: every layer)",
            "flag": "--layer",
            "metavar": "L",
        },
    )
    position: str = field(
        default="last",
        metadata={
            "help": "decompose at the last position (default) or at the last subject token",
            "metavar": "{last,subject}",
        },
    )

    def __post_init__(self) -> None:
        check_position(self.position)


@dataclass(frozen=True)
class ComponentEffect:
    """One component's part in one MLP: its gain and push (means over prompts), and its size."""

    name: str
    gain: Interval
    push: Interval
    norm: float  # mean ‖x_c‖: how much the component wrote at the position

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gain": self.gain.as_dict(5),
            "push": self.push.as_dict(5),
            "norm": round(self.norm, 5),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComponentEffect:
        return cls(str(data["name"]), interval(data["gain"]), interval(data["push"]), float(data["norm"]))


def by_push(components: list[ComponentEffect]) -> list[ComponentEffect]:
    """Components by mean push, most toward the answer first."""
    return sorted(components, key=lambda c: -c.push.value)


def by_gain(components: list[ComponentEffect], *, min_share: float = 0.05) -> list[ComponentEffect]:
    """Components by |mean gain|; only those that wrote at least ``min_share`` of the largest norm."""
    largest = max((c.norm for c in components), default=0.0)
    sized = [c for c in components if c.norm >= min_share * largest and np.isfinite(c.gain.value)]
    return sorted(sized, key=lambda c: -abs(c.gain.value))


@dataclass
class LayerDecomposition:
    """The parts of one MLP: the components' gains and pushes, the whole MLP's push, the sum's residual.

    ``top_by_push``, ``top_by_gain`` and ``n_components`` are of every component the MLP reads.
    """

    layer: int
    components: list[ComponentEffect]
    total_push: Interval  # the whole MLP's direct push (the sum of the parts')
    residual: float  # max |Σ parts − real output| over prompts and dimensions
    relative_residual: float  # the same over max |real output|
    top_by_push: list[str] = field(default_factory=list)
    top_by_gain: list[str] = field(default_factory=list)
    n_components: int = 0

    @classmethod
    def of(
        cls, layer: int, components: list[ComponentEffect], total: Interval, residual: float, relative: float
    ) -> LayerDecomposition:
        """One MLP's parts, with its components ranked by push and by gain."""
        pushes, gains = by_push(components)[:LISTED], by_gain(components)[:LISTED]
        return cls(
            layer,
            components,
            total,
            residual,
            relative,
            [c.name for c in pushes],
            [c.name for c in gains],
            len(components),
        )

    def component(self, name: str) -> ComponentEffect:
        for c in self.components:
            if c.name == name:
                return c
        raise InputError(f"MLP {self.layer} reads no component {name!r}")

    def by_push(self) -> list[ComponentEffect]:
        return by_push(self.components)

    def by_gain(self, *, min_share: float = 0.05) -> list[ComponentEffect]:
        return by_gain(self.components, min_share=min_share)

    def to_dict(self, keep: set[str] | None = None) -> dict[str, Any]:
        """The record of this MLP; ``keep`` limits ``components`` to those names (all by default)."""
        return {
            "layer": self.layer,
            "mlp": mlp_name(self.layer),
            "total_push": self.total_push.as_dict(5),
            "residual": float(f"{self.residual:.3g}"),
            "relative_residual": float(f"{self.relative_residual:.3g}"),
            "top_by_push": self.top_by_push,
            "top_by_gain": self.top_by_gain,
            "n_components": self.n_components,
            "components": [c.to_dict() for c in self.components if keep is None or c.name in keep],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerDecomposition:
        components = [ComponentEffect.from_dict(c) for c in data["components"]]
        return cls(
            int(data["layer"]),
            components,
            interval(data["total_push"]),
            float(data["residual"]),
            float(data["relative_residual"]),
            [str(n) for n in data.get("top_by_push", [])],
            [str(n) for n in data.get("top_by_gain", [])],
            int(data.get("n_components", len(components))),
        )


@dataclass(frozen=True)
class MovingHead:
    """How much a head moves from the subject's positions to the last position: mean ‖Σ_s A v W_O‖."""

    head: str
    moved: Interval

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head, "moved": self.moved.as_dict(5)}


@dataclass(frozen=True)
class MovingPart:
    """A subject-moving head's part in a later MLP."""

    head: str
    layer: int
    gain: Interval
    push: Interval

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "layer": self.layer,
            "gain": self.gain.as_dict(5),
            "push": self.push.as_dict(5),
        }


@dataclass
class MLPRecord(AnalysisRecord):
    """Per decomposed MLP the parts of its input components; the subject-moving heads and their parts."""

    NAME: ClassVar[str] = "mlp"
    VERSION: ClassVar[int] = 1

    n_layers: int
    position: str
    layers: list[LayerDecomposition]
    moving_heads: list[MovingHead]  # every head, most moving first
    moving_parts: list[MovingPart]  # the top moving heads' parts in the decomposed MLPs that read them
    moving_total_push: dict[str, Interval] = field(default_factory=dict)  # per top head, Σ over those MLPs
    n_moving: int = 5
    complete: bool = True  # every component of every MLP is held (false for a record read back)

    def layer(self, layer: int) -> LayerDecomposition:
        for d in self.layers:
            if d.layer == layer:
                return d
        raise InputError(f"layer {layer} was not decomposed; decomposed: {[d.layer for d in self.layers]}")

    def top_moving(self) -> list[str]:
        return [h.head for h in self.moving_heads[: self.n_moving]]

    def parts_of(self, head: str) -> list[MovingPart]:
        return [p for p in self.moving_parts if p.head == head]

    def strongest(self, key: str, n: int) -> set[str]:
        """The ``n`` components with the largest |mean ``key``| (push or gain) in any decomposed MLP."""
        best: dict[str, float] = {}
        for d in self.layers:
            for c in d.by_gain() if key == "gain" else d.components:
                value = abs(getattr(c, key).value)
                if np.isfinite(value):
                    best[c.name] = max(best.get(c.name, 0.0), value)
        return set(sorted(best, key=lambda name: -best[name])[:n])

    def listed(self) -> set[str] | None:
        """The components the file lists (``None``: every one held): the moving heads, the strongest parts."""
        if not self.complete:
            return None
        return set(self.top_moving()) | self.strongest("push", 2 * LISTED) | self.strongest("gain", LISTED)

    def listed_components(self, layer: LayerDecomposition) -> list[ComponentEffect]:
        """The components of ``layer`` the file lists (what the figure draws, so a redraw is the same)."""
        keep = self.listed()
        return [c for c in layer.components if keep is None or c.name in keep]

    @property
    def residual(self) -> float:
        """The largest relative residual of the sum over the decomposed layers."""
        return max((d.relative_residual for d in self.layers), default=0.0)

    def description(self) -> str:
        return GAIN

    def own_dict(self) -> dict[str, Any]:
        keep = self.listed()
        return {
            "n_layers": self.n_layers,
            "position": self.position,
            "gain": GAIN,
            "push": PUSH,
            "components_listed": f"the subject-moving heads and the {2 * LISTED} components with the largest "
            f"|push| and the {LISTED} with the largest |gain| in any MLP",
            "layers": [d.to_dict(keep) for d in self.layers],
            "moving_heads": [h.to_dict() for h in self.moving_heads],
            "top_moving": self.top_moving(),
            "moving_parts": [p.to_dict() for p in self.moving_parts],
            "moving_total_push": {h: iv.as_dict(5) for h, iv in self.moving_total_push.items()},
            "max_relative_residual": float(f"{self.residual:.3g}"),
        }

    @classmethod
    def read_own(cls, data: Mapping[str, Any], provenance: Provenance) -> MLPRecord:
        parts = [
            MovingPart(str(p["head"]), int(p["layer"]), interval(p["gain"]), interval(p["push"]))
            for p in data["moving_parts"]
        ]
        return cls(
            provenance,
            int(data["n_layers"]),
            str(data["position"]),
            [LayerDecomposition.from_dict(d) for d in data["layers"]],
            [MovingHead(str(h["head"]), interval(h["moved"])) for h in data["moving_heads"]],
            parts,
            read_map(data.get("moving_total_push") or {}, interval),
            len(data.get("top_moving", [])),
            complete=False,
        )

    def summary_lines(self, top: int | None = None) -> list[str]:
        top = 5 if top is None else top
        where = "the last subject token" if self.position == "subject" else "the last position"
        text = [
            self.provenance.heading(),
            f"each MLP's input at {where} split into its upstream components; gain = <MLP_c, x_c> / |x_c|^2 "
            "(> 0 amplifies what c wrote, < 0 erases it); push = the part's direct effect on the answer's "
            "centred logit; mean [95% bootstrap interval]",
            f"the parts sum to the real MLP output: largest relative residual {self.residual:.1e}",
            f"{'MLP':>5}  {'push of the whole MLP':<24}top {top} parts by push: push (gain)",
        ]
        for d in self.layers:
            parts = ", ".join(
                f"{c.name} {_signed(c.push.value)} ({_signed(c.gain.value)})" for c in d.by_push()[:top]
            )
            text.append(f"{'m' + str(d.layer):>5}  {d.total_push.format(2):<24}{parts}")
            gains = ", ".join(f"{c.name} {_signed(c.gain.value)}" for c in d.by_gain()[:top])
            text.append(f"{'':>5}  {'':<24}largest |gain|: {gains}")
        text.append(
            "subject-moving heads: mean |sum over subject positions s of A[last, s] v_s W_O| at the last "
            "position; their parts in the decomposed MLPs that read them (* the interval excludes 0):"
        )
        moved = {h.head: h.moved for h in self.moving_heads}
        for name in self.top_moving():
            parts = self.parts_of(name)
            line = f"  {name:>8}  moved {moved[name].format(2)}"
            if not parts or name not in self.moving_total_push:
                text.append(line + "; no decomposed MLP reads it")
                continue
            text.append(line + f"; push summed over those MLPs {self.moving_total_push[name].format(2)}")
            for key in ("gain", "push"):
                values = [(p.layer, getattr(p, key)) for p in parts]
                shown_parts = ", ".join(
                    f"m{i} {_signed(v.value)}{'*' if v.excludes_zero else ''}" for i, v in values
                )
                text.append(f"            {key}: {shown_parts}")
        return text

    def finding(self) -> str:
        top = self.top_moving()
        if not top:
            return "no subject-moving head"
        push = self.moving_total_push.get(top[0])
        return (
            f"subject-moving head {top[0]}: the MLPs' parts along its output push the answer by {shown(push)}"
        )


def _signed(value: float) -> str:
    return "—" if value != value else f"{value:+.2f}"  # NaN: an undefined gain
