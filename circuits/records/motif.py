"""The additive motif's settings and record (torch-free); the analysis is :mod:`circuits.mechanisms.motif`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from circuits.records.base import AnalysisRecord, Provenance, interval, read_map, shown
from circuits.records.dla import ShareSettings
from circuits.uncertainty import Interval

__all__ = ["GROUPS", "MotifRecord", "MotifSettings"]

GROUPS = ("subject heads", "relation heads", "mixed heads", "MLPs", "rest")
HEAD_GROUPS = GROUPS[:3]
DEFINITION = (
    "contribution: a group's direct effect on the answer's centred logit; top1: share of "
    "prompts where the group's direct logits rank the answer first among the relation's "
    "candidate answers; motif: share where no group alone does but their sum does"
)


@dataclass(frozen=True)
class MotifSettings(ShareSettings):
    """The head-class thresholds the groups are made with."""


@dataclass
class MotifRecord(AnalysisRecord):
    """Group contributions to the answer, each group's rank of it, and how often only the sum finds it.

    ``members`` names each group's components (a record read back names those of
    the head groups only; ``sizes`` counts every group); ``ranks`` (per prompt) is kept in memory only.
    """

    NAME: ClassVar[str] = "motif"
    VERSION: ClassVar[int] = 1

    n_candidates: int
    members: dict[str, list[str]]  # group -> component names
    sizes: dict[str, int]  # group -> number of components
    contribution: dict[str, Interval]  # mean direct effect on the answer's centred logit (and "sum")
    top1: dict[str, Interval]  # share of prompts where the group (or "sum") ranks the answer first
    median_rank: dict[str, float]
    motif: Interval  # share of prompts: no group ranks it first, the sum does
    groups: tuple[str, ...] = GROUPS
    ranks: np.ndarray | None = field(default=None, repr=False, compare=False)  # [prompts, groups + 1]

    def description(self) -> str:
        return DEFINITION

    def own_dict(self) -> dict[str, Any]:
        return {
            "n_candidates": self.n_candidates,
            "groups": list(self.groups),
            "members": {g: self.members.get(g, []) if g in HEAD_GROUPS else n for g, n in self.sizes.items()},
            "contribution": {g: iv.as_dict() for g, iv in self.contribution.items()},
            "top1": {g: iv.as_dict() for g, iv in self.top1.items()},
            "median_rank": self.median_rank,
            "motif": self.motif.as_dict(),
            "definition": DEFINITION,
        }

    @classmethod
    def read_own(cls, data: Mapping[str, Any], provenance: Provenance) -> MotifRecord:
        stored = data["members"]
        members = {str(g): [str(n) for n in m] for g, m in stored.items() if isinstance(m, list)}
        sizes = {str(g): len(m) if isinstance(m, list) else int(m) for g, m in stored.items()}
        return cls(
            provenance,
            int(data["n_candidates"]),
            members,
            sizes,
            read_map(data["contribution"], interval),
            read_map(data["top1"], interval),
            read_map(data["median_rank"], float),
            interval(data["motif"]),
            tuple(str(g) for g in data.get("groups", GROUPS)),
        )

    def summary_lines(self, top: int | None = None) -> list[str]:
        text = [
            self.provenance.heading(),
            f"groups' direct effects at the last position, ranked among the relation's "
            f"{self.n_candidates} candidate answers",
            f"{'group':>16}{'members':>9}{'effect on answer logit':>26}{'ranks it first':>24}"
            f"{'median rank':>13}",
        ]
        for g in [*self.groups, "sum"]:
            size = self.sizes.get(g, "")
            text.append(
                f"{g:>16}{size!s:>9}{self.contribution[g].format(2):>26}{self.top1[g].format(2):>24}"
                f"{self.median_rank[g]:>13g}"
            )
        for g in HEAD_GROUPS:
            if self.members.get(g):
                text.append(f"{g}: {', '.join(self.members[g][:8])}")
        text.append(f"additive motif (no group alone ranks the answer first, the sum does): {self.motif}")
        return text

    def finding(self) -> str:
        return (
            f"additive motif (no group alone, their sum ranks the answer first) on {shown(self.motif)} of "
            f"prompts; the sum ranks it first on {shown(self.top1.get('sum'))}"
        )
