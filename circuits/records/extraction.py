"""Attribute extraction's settings and record (torch-free); the analysis is
:mod:`circuits.mechanisms.attribute_extraction`.

Attribute extraction (Geva et al. 2023: which sublayers write the answer at
the last position) is not circuit extraction (``circuits extract``, choosing
a circuit's edges): its command is ``circuits attribute-extraction``; its
record and files keep the name ``extraction``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from circuits.records.base import AnalysisRecord, AnalysisSettings, Provenance, intervals
from circuits.uncertainty import Interval
from circuits.vocab import InputError

__all__ = ["ExtractionRecord", "ExtractionSettings", "HeadExtraction"]

RATE = (
    "share of prompts where the sublayer's output at the last position, through the frozen "
    "final norm and the unembedding, has the answer as its top-1 token; 95% bootstrap interval"
)
TOP_HEADS = 10


@dataclass(frozen=True)
class ExtractionSettings(AnalysisSettings):
    """Attribute extraction has no options of its own."""


@dataclass(frozen=True)
class HeadExtraction:
    """How one head ranks the answer: in its output at the last position, and through its OV map."""

    head: str
    median_rank: float
    top1: float
    ov_median_rank: float
    ov_top10: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "median_rank": self.median_rank,
            "top1": round(self.top1, 4),
            "ov_median_rank": self.ov_median_rank,
            "ov_top10": round(self.ov_top10, 4),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadExtraction:
        return cls(
            str(data["head"]),
            float(data["median_rank"]),
            float(data["top1"]),
            float(data["ov_median_rank"]),
            float(data["ov_top10"]),
        )


@dataclass
class ExtractionRecord(AnalysisRecord):
    """Extraction rates per layer (attention vs MLP) and the heads that rank the answer highest."""

    NAME: ClassVar[str] = "extraction"
    VERSION: ClassVar[int] = 1

    n_layers: int
    attn_rate: list[Interval]
    mlp_rate: list[Interval]
    heads: list[HeadExtraction]
    any_event: dict[str, float] = field(default_factory=dict)  # share of prompts with an event at any layer
    attn_median_rank: list[float] = field(default_factory=list)  # the answer's median rank, per layer
    mlp_median_rank: list[float] = field(default_factory=list)
    n_top: int = TOP_HEADS  # heads listed by output and by OV rank

    @property
    def by_output(self) -> list[str]:
        """Heads by the answer's median rank in their output (best first)."""
        return [h.head for h in sorted(self.heads, key=lambda h: (h.median_rank, -h.top1))]

    @property
    def by_ov(self) -> list[str]:
        """Heads by the answer's median rank through their OV map applied to the subject's last token."""
        return [h.head for h in sorted(self.heads, key=lambda h: (h.ov_median_rank, -h.ov_top10))]

    def head(self, name: str) -> HeadExtraction:
        for h in self.heads:
            if h.head == name:
                return h
        raise InputError(f"no head {name!r}")

    def description(self) -> str:
        return RATE

    def own_dict(self) -> dict[str, Any]:
        return {
            "n_layers": self.n_layers,
            "rate": RATE,
            "attn_rate": [r.as_dict() for r in self.attn_rate],
            "mlp_rate": [r.as_dict() for r in self.mlp_rate],
            "any_event": self.any_event,
            "attn_median_rank": self.attn_median_rank,
            "mlp_median_rank": self.mlp_median_rank,
            "top_heads_by_output": [self.head(h).to_dict() for h in self.by_output[: self.n_top]],
            "top_heads_by_ov": [self.head(h).to_dict() for h in self.by_ov[: self.n_top]],
            "heads": [h.to_dict() for h in self.heads],
        }

    @classmethod
    def read_own(cls, data: Mapping[str, Any], provenance: Provenance) -> ExtractionRecord:
        return cls(
            provenance,
            int(data["n_layers"]),
            intervals(data["attn_rate"]),
            intervals(data["mlp_rate"]),
            [HeadExtraction.from_dict(h) for h in data["heads"]],
            {str(k): float(v) for k, v in (data.get("any_event") or {}).items()},
            [float(r) for r in data.get("attn_median_rank", [])],
            [float(r) for r in data.get("mlp_median_rank", [])],
            len(data.get("top_heads_by_output", [])),
        )

    def summary_lines(self, top: int | None = None) -> list[str]:
        top = self.n_top if top is None else top
        text = [
            self.provenance.heading(),
            "extraction rate: share of prompts whose sublayer output at the last position "
            "decodes to the answer as top-1",
            f"{'layer':>6}{'attention':>22}{'MLP':>22}",
        ]
        for layer in range(self.n_layers):
            text.append(
                f"{layer:>6}{self.attn_rate[layer].format(3):>22}{self.mlp_rate[layer].format(3):>22}"
            )
        text += [
            f"prompts with an event at any layer: attention {self.any_event.get('attn', 0.0):.2f}, "
            f"MLP {self.any_event.get('mlp', 0.0):.2f}",
            f"top {top} heads by the answer's median rank in their output (and through their OV "
            "map applied to the subject's last token):",
            f"{'head':>9}{'median rank':>13}{'top-1':>7}{'OV median rank':>16}{'OV top-10':>11}",
        ]
        for name in self.by_output[:top]:
            h = self.head(name)
            text.append(
                f"{h.head:>9}{h.median_rank:>13g}{h.top1:>7.2f}{h.ov_median_rank:>16g}{h.ov_top10:>11.2f}"
            )
        text.append(
            "top heads by OV rank: "
            + ", ".join(f"{n} ({self.head(n).ov_median_rank:g})" for n in self.by_ov[:top])
        )
        return text

    def finding(self) -> str:
        heads = ", ".join(self.by_output[:3])
        return (
            f"an attention sublayer puts the answer first on {100 * self.any_event.get('attn', 0):.0f}% of "
            f"prompts, an MLP on {100 * self.any_event.get('mlp', 0):.0f}%; top heads {heads}"
        )
