"""Subject enrichment's settings and record (torch-free).

The analysis is :mod:`circuits.mechanisms.subject_enrichment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from circuits.records.base import (
    AnalysisRecord,
    AnalysisSettings,
    Provenance,
    interval,
    intervals,
    read_map,
    shown,
)
from circuits.uncertainty import Interval

__all__ = ["CONDITIONS", "EnrichmentRecord", "EnrichmentSettings"]

CONDITIONS = ("clean", "mlp-early", "mlp-late", "attn-early", "attn-late")
"""No intervention, then a sublayer's output removed at the subject in the early or the late layers."""


@dataclass(frozen=True)
class EnrichmentSettings(AnalysisSettings):
    """How many logit-lens tokens are read, and where the late layers begin."""

    top_k: int = field(
        default=50, metadata={"help": "logit-lens tokens read per layer (default 50)", "min": 1}
    )
    split: int | None = field(
        default=None,
        metadata={"help": "first 'late' layer for the removal conditions (default n_layers // 2)", "min": 0},
    )


@dataclass
class EnrichmentRecord(AnalysisRecord):
    """Attribute rate per layer at the last subject token, clean and with sublayer updates removed."""

    NAME: ClassVar[str] = "enrichment"
    VERSION: ClassVar[int] = 1

    n_layers: int
    top_k: int
    split: int
    rates: dict[str, list[Interval]]  # condition (and "null") -> rate after each layer
    embedding_rate: Interval
    n_no_attributes: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    def peak(self, condition: str = "clean") -> tuple[int, Interval]:
        """The layer where the attribute rate is highest, and the rate there."""
        values = [r.value for r in self.rates[condition]]
        layer = int(np.nanargmax(values))
        return layer, self.rates[condition][layer]

    def description(self) -> str:
        return (
            f"share of the top-{self.top_k} logit-lens tokens at the last subject token that are "
            "attributes of the subject, after each layer; mean over prompts, 95% bootstrap interval"
        )

    def conditions(self) -> dict[str, str]:
        """What each condition did, in words."""
        early, late = f"layers 0..{self.split - 1}", f"layers {self.split}..{self.n_layers - 1}"
        return {
            "clean": "no intervention",
            "mlp-early": f"MLP outputs at the subject positions set to zero in {early}",
            "mlp-late": f"MLP outputs at the subject positions set to zero in {late}",
            "attn-early": f"attention outputs at the subject positions set to zero in {early}",
            "attn-late": f"attention outputs at the subject positions set to zero in {late}",
            "null": "no intervention, scored against another prompt's subject's attributes (chance level)",
        }

    def own_dict(self) -> dict[str, Any]:
        layer, rate = self.peak()
        return {
            "n_layers": self.n_layers,
            "top_k": self.top_k,
            "split": self.split,
            "n_no_attributes": self.n_no_attributes,
            "rate": self.description(),
            "conditions": self.conditions(),
            "embedding_rate": self.embedding_rate.as_dict(),
            "rates": {c: [r.as_dict() for r in rs] for c, rs in self.rates.items()},
            "peak": {"layer": layer, "rate": rate.as_dict()},
            "examples": self.examples,
        }

    @classmethod
    def read_own(cls, data: Mapping[str, Any], provenance: Provenance) -> EnrichmentRecord:
        return cls(
            provenance,
            int(data["n_layers"]),
            int(data["top_k"]),
            int(data["split"]),
            read_map(data["rates"], intervals),
            interval(data["embedding_rate"]),
            int(data.get("n_no_attributes", 0)),
            list(data.get("examples", [])),
        )

    def summary_lines(self, top: int | None = None) -> list[str]:
        text = [
            self.provenance.heading(),
            f"attribute rate at the last subject token (share of the top-{self.top_k} "
            f"logit-lens tokens that are attributes of the subject); {self.n_no_attributes} prompts "
            "without attribute words left out",
        ]
        conditions = list(self.rates)
        text.append(f"{'layer':>6}" + "".join(f"{c:>22}" for c in conditions))
        for layer in range(self.n_layers):
            text.append(f"{layer:>6}" + "".join(f"{self.rates[c][layer].format(3):>22}" for c in conditions))
        layer, rate = self.peak()
        text.append(f"embedding {self.embedding_rate.format(3)}; peak at layer {layer}: {rate.format(3)}")
        return text

    def finding(self) -> str:
        layer, rate = self.peak()
        return f"attribute rate at the last subject token peaks after layer {layer}: {shown(rate)}"
