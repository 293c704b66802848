"""The registry of mechanism analyses (torch-free): one :class:`Analysis` per analysis, by name.

An entry ties together what the rest of the package needs to know about an
analysis: its name (the ``analysis`` key of its record, its file stem and its
stages' prefix), its command, title and help, its settings dataclass (the
command's options are built from its fields), its record type (read back with
``from_dict``), its ``run`` (a ``module:function`` path inside
:mod:`circuits.mechanisms`, imported only when called, so the registry stays
torch-free) and its figure. The command line (:mod:`circuits.cli.analysis`),
the main job (:mod:`circuits.jobs.job`, whose stages are keyed by the
analysis's version) and the report (:mod:`circuits.report.collect`) all read
:data:`ANALYSES`, so adding an analysis is its module and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from circuits.draw.attribution_figures import dla_figure, motif_figure, suppression_figure
from circuits.draw.figures import enrichment_figure, extraction_figure, knockout_figure
from circuits.draw.mlp_figures import mlp_figure
from circuits.records.base import AnalysisRecord, AnalysisSettings
from circuits.records.dla import DLARecord, DLASettings
from circuits.records.enrichment import EnrichmentRecord, EnrichmentSettings
from circuits.records.extraction import ExtractionRecord, ExtractionSettings
from circuits.records.knockout import KnockoutRecord, KnockoutSettings
from circuits.records.mlp import MLPRecord, MLPSettings
from circuits.records.motif import MotifRecord, MotifSettings
from circuits.records.suppression import SuppressionRecord, SuppressionSettings
from circuits.vocab import InputError

__all__ = ["ANALYSES", "Analysis", "analysis", "job_analyses"]


@dataclass(frozen=True)
class Analysis:
    """One mechanism analysis: what it is called, takes, returns, runs and draws.

    Parameters
    ----------
    name : str
        The record's ``analysis`` key, its file stem (``<name>.json``,
        ``<name>.svg``) and the main job's stage prefix.
    title : str
        The figure's title in the report.
    help : str
        The command's one-line help.
    settings : type
        Its frozen settings dataclass (:class:`~circuits.records.base.AnalysisSettings`).
    record : type
        Its record dataclass (:class:`~circuits.records.base.AnalysisRecord`);
        ``record.VERSION`` is the analysis's version.
    run : str or callable
        ``"circuits.mechanisms.<module>:<function>"`` (imported on call), or
        the function itself: ``run(model, pairs, settings, *, seed, progress) -> record``,
        ``pairs`` a :class:`~circuits.relations.pairs.PairSet` (a list of them
        for an analysis across relations).
    draw : callable
        ``draw(record) -> str``, an SVG document.
    scope : ``"relation"`` or ``"relations"``
        One relation (stored in ``<model>/<relation>/mechanisms/``) or several
        (stored in ``<model>/<name>/``; not part of the main job).
    command : str, optional
        The command's name (default ``name``).
    old_commands : tuple of str
        Former command names, still accepted for one version with a warning.
    top : tuple of (int, str), optional
        A ``--top N`` option of the printed table: its default and help.
    """

    name: str
    title: str
    help: str
    settings: type[AnalysisSettings]
    record: type[AnalysisRecord]
    run: str | Callable[..., AnalysisRecord]
    draw: Callable[[Any], str]
    scope: Literal["relation", "relations"] = "relation"
    command: str = ""
    old_commands: tuple[str, ...] = ()
    top: tuple[int, str] | None = None

    @property
    def version(self) -> int:
        """The analysis's version: a stage stored under another version runs again."""
        return self.record.VERSION

    @property
    def command_name(self) -> str:
        return self.command or self.name

    def runner(self) -> Callable[..., AnalysisRecord]:
        """The analysis's ``run`` function (its module imported now)."""
        if callable(self.run):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)

    def read(self, data: Mapping[str, Any], *, source: str = "") -> AnalysisRecord:
        """The record stored as ``data`` (any version's layout)."""
        return self.record.from_dict(data, source=source)


_M = "circuits.mechanisms."
_SHARES = "(Chughtai et al. 2024)"

ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis(
            "knockout",
            "Attention knockout",
            "block attention from the last position to source roles, per window of layers (Geva et al. 2023)",
            KnockoutSettings,
            KnockoutRecord,
            _M + "attention_knockout:run",
            knockout_figure,
        ),
        Analysis(
            "enrichment",
            "Subject enrichment",
            "attribute rate per layer at the last subject token, with early/late MLP or attention updates "
            "removed (Geva et al. 2023)",
            EnrichmentSettings,
            EnrichmentRecord,
            _M + "subject_enrichment:run",
            enrichment_figure,
        ),
        Analysis(
            "extraction",
            "Attribute extraction",
            "attribute extraction: per layer, how often attention and MLP outputs at the last position "
            "decode to the answer; the heads that rank it highest (Geva et al. 2023)",
            ExtractionSettings,
            ExtractionRecord,
            _M + "attribute_extraction:run",
            extraction_figure,
            command="attribute-extraction",
            old_commands=("extraction",),
            top=(10, "heads listed (default 10)"),
        ),
        Analysis(
            "dla",
            "Per-source direct logit attribution",
            "every head's direct logit attribution at the last position, split by source role; subject, "
            f"relation and mixed heads {_SHARES}",
            DLASettings,
            DLARecord,
            _M + "per_source_dla:run",
            dla_figure,
        ),
        Analysis(
            "motif",
            "Additive motif",
            "the additive motif: subject, relation and mixed heads, MLPs and the rest, each alone and "
            f"summed, ranking the answer among the relation's candidates {_SHARES}",
            MotifSettings,
            MotifRecord,
            _M + "motif:run",
            motif_figure,
        ),
        Analysis(
            "mlp",
            "MLP decomposition",
            "split each MLP's output into the parts due to its upstream components: what it amplifies, "
            "erases and turns into the answer (Lv et al. 2024)",
            MLPSettings,
            MLPRecord,
            _M + "mlp_parts:run",
            mlp_figure,
            top=(5, "parts listed per MLP (default 5)"),
        ),
        Analysis(
            "suppression",
            "Final-layer suppression",
            "last-layer components that push the answer down on most facts of most relations, and "
            "scaling them by alpha (Lv et al. 2024)",
            SuppressionSettings,
            SuppressionRecord,
            _M + "suppressors:run",
            suppression_figure,
            scope="relations",
        ),
    )
}
"""Every mechanism analysis, by name, in the order the command list and the report show them."""


def analysis(name: str) -> Analysis:
    """The registry's entry ``name``, else an :class:`~circuits.vocab.InputError` listing the valid ones.

    >>> analysis("knockout").version >= 1, analysis("extraction").command_name
    (True, 'attribute-extraction')
    """
    if name not in ANALYSES:
        raise InputError(f"unknown analysis {name!r}; valid: {', '.join(ANALYSES)}")
    return ANALYSES[name]


def job_analyses() -> tuple[str, ...]:
    """The analyses the main job runs on every relation (those of one relation)."""
    return tuple(name for name, a in ANALYSES.items() if a.scope == "relation")
