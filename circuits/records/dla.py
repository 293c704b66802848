"""Per-source DLA's settings, thresholds and record (torch-free); the analysis is
:mod:`circuits.mechanisms.per_source_dla`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from circuits.records.base import AnalysisRecord, AnalysisSettings, Provenance, interval, read_map, shown
from circuits.relations.roles import ROLES
from circuits.uncertainty import Interval
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.mechanisms.direct_effects import LastPosition

__all__ = ["CLASSES", "DLARecord", "DLASettings", "HeadAttribution", "ShareSettings", "Thresholds"]

CLASSES = ("subject", "relation", "mixed")


@dataclass(frozen=True)
class Thresholds:
    """When a head counts as a subject, relation or mixed head (shares of its positive DLA)."""

    subject_share: float = 0.7
    relation_share: float = 0.7
    mixed_share: float = 0.25
    min_share: float = 0.02

    def __post_init__(self) -> None:
        for name in ("subject_share", "relation_share", "mixed_share", "min_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name.replace('_', '-')} must be a share in [0, 1], not {value}")

    def classify(self, shares: Mapping[str, float]) -> str:
        """``subject``, ``relation``, ``mixed`` or ``other`` from a head's positive-DLA shares per role."""
        if shares["subject"] >= self.subject_share:
            return "subject"
        if shares["relation"] >= self.relation_share:
            return "relation"
        if shares["subject"] >= self.mixed_share and shares["relation"] >= self.mixed_share:
            return "mixed"
        return "other"

    def as_dict(self) -> dict[str, float]:
        return {
            "subject_share": self.subject_share,
            "relation_share": self.relation_share,
            "mixed_share": self.mixed_share,
            "min_share": self.min_share,
        }


def _share(default: float, text: str) -> Any:
    return field(default=default, metadata={"help": text, "range": (0.0, 1.0)})


@dataclass(frozen=True)
class ShareSettings(AnalysisSettings):
    """The head-class thresholds, as options (DLA and the additive motif class heads alike)."""

    subject_share: float = _share(
        0.7, "a subject head takes at least this share of its positive DLA from the subject (default 0.7)"
    )
    relation_share: float = _share(0.7, "... a relation head from the relation tokens (default 0.7)")
    mixed_share: float = _share(0.25, "... a mixed head at least this from each (default 0.25)")
    min_share: float = _share(
        0.02,
        "heads are classified when their mean DLA is at least this share of all heads' positive DLA "
        "(default 0.02)",
    )

    def __post_init__(self) -> None:
        self.thresholds()

    def thresholds(self) -> Thresholds:
        return Thresholds(self.subject_share, self.relation_share, self.mixed_share, self.min_share)


@dataclass(frozen=True)
class DLASettings(ShareSettings):
    """The direction the heads' direct effects are read on, the heads listed, the class thresholds."""

    direction: str = field(
        default="answer",
        metadata={
            "help": "the answer's centred logit, or the logit difference to the counterfactual's answer "
            "(default answer)",
            "choices": ("answer", "logit-diff"),
        },
    )
    top: int = field(default=20, metadata={"help": "heads listed and drawn (default 20)", "min": 1})


@dataclass(frozen=True)
class HeadAttribution:
    """One head: its direct effect, split by role, and its class (``None`` when not active)."""

    head: str
    dla: Interval
    by_role: dict[str, Interval]
    shares: dict[str, float]  # share of the positive DLA from each role
    head_class: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "dla": self.dla.as_dict(),
            "by_role": {r: iv.as_dict() for r, iv in self.by_role.items()},
            "positive_share": {r: round(v, 4) for r, v in self.shares.items()},
            "class": self.head_class,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadAttribution:
        head_class = data.get("class")
        return cls(
            str(data["head"]),
            interval(data["dla"]),
            read_map(data["by_role"], interval),
            read_map(data.get("positive_share") or {}, float),
            None if head_class is None else str(head_class),
        )


@dataclass
class DLARecord(AnalysisRecord):
    """Every head's per-role direct effect on one relation's prompts, and the heads' classes.

    ``last`` (the per-prompt direct effects) is kept in memory only; a record read back has none.
    """

    NAME: ClassVar[str] = "dla"
    VERSION: ClassVar[int] = 1

    direction: str
    n_layers: int
    n_heads: int
    heads: list[HeadAttribution]
    thresholds: Thresholds
    max_sum_error: float  # max |Σ_s DLA(h, s) − DLA(h)| over heads and prompts
    n_top: int = 20  # heads listed under "top_heads" (and drawn)
    roles: tuple[str, ...] = ROLES
    last: LastPosition | None = field(default=None, repr=False, compare=False)

    def head(self, name: str) -> HeadAttribution:
        for h in self.heads:
            if h.head == name:
                return h
        raise InputError(f"no head {name!r}")

    def of_class(self, head_class: str) -> list[str]:
        """Heads of one class, strongest direct effect first."""
        chosen = [h for h in self.heads if h.head_class == head_class]
        return [h.head for h in sorted(chosen, key=lambda h: -h.dla.value)]

    def classes(self) -> dict[str, str]:
        """Head name -> class, for the active heads."""
        return {h.head: h.head_class for h in self.heads if h.head_class is not None}

    def counts(self) -> dict[str, int]:
        """Heads per class (``other``: active heads of no class)."""
        return {c: len(self.of_class(c)) for c in (*CLASSES, "other")}

    def top(self, n: int) -> list[str]:
        """The ``n`` heads with the largest mean |direct effect|."""
        return [h.head for h in sorted(self.heads, key=lambda h: -abs(h.dla.value))[:n]]

    def description(self) -> str:
        what = "answer's centred logit" if self.direction == "answer" else "logit difference"
        return (
            f"direct effect of each head at the last position on the {what}, split by the role of the "
            "source position; mean over prompts, 95% bootstrap interval"
        )

    def own_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "roles": list(self.roles),
            "dla": self.description(),
            "thresholds": self.thresholds.as_dict(),
            "counts": self.counts(),
            "classes": {c: self.of_class(c) for c in (*CLASSES, "other")},
            "top_heads": [self.head(h).to_dict() for h in self.top(self.n_top)],
            "heads": [h.to_dict() for h in self.heads],
            "max_sum_error": self.max_sum_error,
        }

    @classmethod
    def read_own(cls, data: Mapping[str, Any], provenance: Provenance) -> DLARecord:
        return cls(
            provenance,
            str(data["direction"]),
            int(data["n_layers"]),
            int(data["n_heads"]),
            [HeadAttribution.from_dict(h) for h in data["heads"]],
            Thresholds(**{k: float(v) for k, v in data["thresholds"].items()}),
            float(data["max_sum_error"]),
            len(data.get("top_heads", [])),
            tuple(str(r) for r in data.get("roles", ROLES)),
        )

    def summary_lines(self, top: int | None = None) -> list[str]:
        text = [
            self.provenance.heading(),
            self.description(),
            f"per-source sums match each head's DLA to {self.max_sum_error:.1e}",
            f"{'head':>9}{'DLA':>24}" + "".join(f"{r:>10}" for r in self.roles) + f"{'class':>10}",
        ]
        for name in self.top(self.n_top if top is None else top):
            h = self.head(name)
            by_role = "".join(f"{h.by_role[r].value:>10.3f}" for r in self.roles)
            dla = f"{h.dla.value:.3f} [{h.dla.low:.3f}, {h.dla.high:.3f}]"
            text.append(f"{h.head:>9}{dla:>24}{by_role}{h.head_class or '-':>10}")
        t = self.thresholds
        text.append(
            f"classes (active: mean DLA > 0, interval excludes 0, >= {t.min_share:.0%} of the heads' "
            f"positive DLA; subject/relation >= {t.subject_share:.0%}/{t.relation_share:.0%} of "
            f"positive DLA from that role, mixed >= {t.mixed_share:.0%} from each):"
        )
        for c in CLASSES:
            names = self.of_class(c)
            listed = ", ".join(f"{n} ({self.head(n).dla.value:.2f})" for n in names[:5])
            text.append(f"  {c} heads: {len(names)}" + (f" — {listed}" if names else ""))
        return text

    def finding(self) -> str:
        counts = self.counts()
        top = self.top(1)
        strongest = self.head(top[0]) if top else None
        return (
            f"{counts['subject']} subject, {counts['relation']} relation, {counts['mixed']} mixed heads; "
            f"strongest {strongest and strongest.head} ({strongest and strongest.head_class}) "
            f"{shown(strongest and strongest.dla)}"
        )
