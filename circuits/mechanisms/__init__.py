"""The seed papers' mechanisms as analyses of one relation's known-fact prompts.

- :mod:`~circuits.mechanisms.attention_knockout`: attention knockout per layer window
  and source role (Geva et al. 2023);
- :mod:`~circuits.mechanisms.subject_enrichment`: the attribute rate at the last
  subject token, with early/late sublayer updates removed;
- :mod:`~circuits.mechanisms.attribute_extraction`: which attention and MLP sublayers,
  and which heads, write the answer at the last position;
- :mod:`~circuits.mechanisms.direct_effects`: every component's direct effect on
  the answer at the last position, heads split by source position;
- :mod:`~circuits.mechanisms.source_attribution`: per-role direct logit attribution
  and subject, relation and mixed heads (Chughtai et al. 2024);
- :mod:`~circuits.mechanisms.additive_motif`: groups of components ranking the
  answer alone and summed;
- :mod:`~circuits.mechanisms.roles`, :mod:`~circuits.mechanisms.attributes`
  (torch-free) and :mod:`~circuits.mechanisms.lens` (the logit lens, frozen
  norms, prompt batches) support them.

Every figure is a mean over prompts with a 95% bootstrap interval
(:mod:`circuits.uncertainty`). Names are imported lazily: ``import
circuits.mechanisms`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ROLES",
    "EnrichmentResult",
    "ExtractionResult",
    "KnockoutResult",
    "LastPosition",
    "MotifResult",
    "Prompts",
    "SourceAttribution",
    "Thresholds",
    "additive_motif",
    "attribute_words",
    "default_window",
    "enrichment",
    "extraction",
    "knockout",
    "last_position",
    "parse_source_sets",
    "source_attribution",
]

_WHERE = {
    "ROLES": "roles", "parse_source_sets": "roles",
    "attribute_words": "attributes",
    "Prompts": "lens",
    "KnockoutResult": "attention_knockout", "default_window": "attention_knockout", "knockout": "attention_knockout",
    "EnrichmentResult": "subject_enrichment", "enrichment": "subject_enrichment",
    "ExtractionResult": "attribute_extraction", "extraction": "attribute_extraction",
    "LastPosition": "direct_effects", "last_position": "direct_effects",
    "SourceAttribution": "source_attribution", "Thresholds": "source_attribution",
    "source_attribution": "source_attribution",
    "MotifResult": "additive_motif", "additive_motif": "additive_motif",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'circuits.mechanisms' has no attribute {name!r}")
    return getattr(importlib.import_module(f"circuits.mechanisms.{_WHERE[name]}"), name)
