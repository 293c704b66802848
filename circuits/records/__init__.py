"""Analysis records and settings, torch-free: what every mechanism analysis stores and takes.

- :mod:`~circuits.records.base`: :class:`Provenance` (model, relation, design,
  prompts, counts, seed, resamples, seconds, versions; written once per
  record), the base record (flat JSON layout, reading back, printing) and the
  base settings;
- one module per analysis (:mod:`~circuits.records.knockout`,
  :mod:`~circuits.records.enrichment`, :mod:`~circuits.records.extraction`,
  :mod:`~circuits.records.dla`, :mod:`~circuits.records.motif`,
  :mod:`~circuits.records.mlp`, :mod:`~circuits.records.suppression`): its
  frozen settings (each option with its help) and its record dataclass.

The analyses themselves live in :mod:`circuits.mechanisms`; the registry
(:mod:`circuits.registry`) ties each analysis's name, version, settings,
record, run and figure together.
"""

from circuits.records.base import DESIGN, AnalysisRecord, AnalysisSettings, Provenance

__all__ = ["DESIGN", "AnalysisRecord", "AnalysisSettings", "Provenance"]
