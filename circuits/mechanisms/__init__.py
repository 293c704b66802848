"""The seed papers' mechanisms as analyses of one relation's known-fact prompts.

- :mod:`~circuits.mechanisms.attention_knockout`: attention knockout per layer window
  and source role (Geva et al. 2023);
- :mod:`~circuits.mechanisms.subject_enrichment`: the attribute rate at the last
  subject token, with early/late sublayer updates removed;
- :mod:`~circuits.mechanisms.attribute_extraction`: which attention and MLP sublayers,
  and which heads, write the answer at the last position;
- :mod:`~circuits.mechanisms.direct_effects`: every component's direct effect on
  the answer at the last position, heads split by source position;
- :mod:`~circuits.mechanisms.per_source_dla`: per-role direct logit attribution
  and subject, relation and mixed heads (Chughtai et al. 2024);
- :mod:`~circuits.mechanisms.motif`: groups of components ranking the
  answer alone and summed;
- :mod:`~circuits.mechanisms.suppressors`: last-layer components that push the
  answer down, and scaling them (Lv et al. 2024);
- :mod:`~circuits.mechanisms.mlp_split` and :mod:`~circuits.mechanisms.mlp_parts`: an
  MLP's output split into the parts due to each upstream component (Lv et al. 2024);
- :mod:`~circuits.mechanisms.edits`, :mod:`~circuits.mechanisms.editing` and
  :mod:`~circuits.mechanisms.interventions`: scaling and ablating nodes, edges and
  output subspaces, before and after;
- :mod:`~circuits.relations.roles`, :mod:`~circuits.mechanisms.attributes`
  (torch-free) and :mod:`~circuits.mechanisms.lens` (the logit lens, frozen
  norms, prompt batches) support them.

Every figure is a mean over prompts with a 95% bootstrap interval
(:mod:`circuits.uncertainty`). Each analysis module has a ``run(model, pairs,
settings, *, seed, progress)`` returning its record; the records and settings
are torch-free (:mod:`circuits.records`) and :mod:`circuits.registry` names
every analysis. Names are imported lazily: ``import circuits.mechanisms``
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ROLES",
    "DLARecord",
    "Edit",
    "EnrichmentRecord",
    "ExtractionRecord",
    "InterventionResult",
    "KnockoutRecord",
    "LastPosition",
    "MLPRecord",
    "MotifRecord",
    "Prompts",
    "SuppressionRecord",
    "Thresholds",
    "additive_motif",
    "attribute_words",
    "candidate_answers",
    "default_window",
    "enrichment",
    "extraction",
    "intervene",
    "knockout",
    "last_position",
    "mlp_decomposition",
    "node_hooks",
    "parse_edits",
    "parse_source_sets",
    "source_attribution",
    "suppression",
]

_WHERE = {
    "ROLES": "circuits.relations.roles",
    "parse_source_sets": "circuits.relations.roles",
    "attribute_words": "attributes",
    "Prompts": "lens",
    "KnockoutRecord": "circuits.records.knockout",
    "default_window": "attention_knockout",
    "knockout": "attention_knockout",
    "EnrichmentRecord": "circuits.records.enrichment",
    "enrichment": "subject_enrichment",
    "ExtractionRecord": "circuits.records.extraction",
    "extraction": "attribute_extraction",
    "LastPosition": "direct_effects",
    "last_position": "direct_effects",
    "DLARecord": "circuits.records.dla",
    "Thresholds": "circuits.records.dla",
    "source_attribution": "per_source_dla",
    "MotifRecord": "circuits.records.motif",
    "additive_motif": "motif",
    "candidate_answers": "motif",
    "MLPRecord": "circuits.records.mlp",
    "mlp_decomposition": "mlp_parts",
    "SuppressionRecord": "circuits.records.suppression",
    "suppression": "suppressors",
    "Edit": "edits",
    "InterventionResult": "interventions",
    "intervene": "interventions",
    "parse_edits": "edits",
    "node_hooks": "editing",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'circuits.mechanisms' has no attribute {name!r}")
    where = _WHERE[name]
    return getattr(importlib.import_module(where if "." in where else f"circuits.mechanisms.{where}"), name)
