"""What the main job runs (:class:`JobSettings`) and the keys its stages are stored under.

Every field of the settings is part of the stages' keys; a relation enters
them by the hash of its content (:func:`relation_digest`), so the same
relation read from another file reuses its stages, and a changed one does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import field
from typing import TYPE_CHECKING, Any

from circuits.attribution.settings import ScoreSettings
from circuits.compare.ceilings import NoiseSettings
from circuits.registry import job_analyses
from circuits.relations import Relation
from circuits.relations.schema import relation_to_json
from circuits.store.gallery import IMPLIED
from circuits.uncertainty import DEFAULT_BOOT
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.circuit import Circuit

__all__ = ["DEFAULT_RELATIONS", "JobSettings", "relation_digest", "settings_dict", "strongest_heads"]

DEFAULT_RELATIONS = ("country_capital_city", "country_language", "country_currency", "city_in_country")
"""Four relations: two that share a subject type with different attributes, two about cities and countries."""


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """What the main job runs; every field is part of the stages' keys.

    Parameters
    ----------
    relations : tuple of str
        Bundled relation names or relation files (at least two for reuse).
    max_pairs : int
        Prompt pairs per relation before the scoring / held-out split.
    ig_steps : int
        EAP-IG integration steps.
    target_faithfulness : float
        The circuit of each relation is the smallest top-n circuit whose
        faithfulness on the scoring pairs reaches this.
    max_edges : int
        ... of at most this many edges (a diagram stays readable); when none
        reaches the target, the top ``max_edges`` edges, marked
        ``target_reached: false``.
    reuse_size : int
        Edges of the equal-size circuits the reuse sweep compares.
    analyses : tuple of str
        Mechanism analyses to run on every relation (names of
        :data:`circuits.registry.ANALYSES` of one relation; default all of them).
    analysis_pairs : int
        Known-fact prompts each mechanism analysis uses.
    n_boot, n_splits, n_perm : int
        Bootstrap resamples (every interval), split-half splits (noise
        ceilings) and permutation shuffles (nulls).
    channels_top : int
        How many weight channels are predicted and drawn.
    positions : bool
        Also score each relation by position role and extract its
        position-aware circuit (same target, at most ``max_edges`` units),
        set against summed circuits of equal size
        (:func:`~circuits.jobs.positions.run_positions`).
    seed : int
        Seeds every split, resample and shuffle.
    max_rank : int
        A fact is known, and used, when the model ranks its answer at most
        this (1: top-1; a huge value keeps every fact, e.g. for a random model).
    templates, shots
        Which templates make each relation's prompts, and how many
        demonstrations precede them (:class:`~circuits.attribution.ScoreSettings`);
        the mechanism analyses use the prompts scoring chose.
    """

    relations: tuple[str, ...] = DEFAULT_RELATIONS
    max_pairs: int = 24
    ig_steps: int = 5
    target_faithfulness: float = 0.8
    max_edges: int = 1000
    reuse_size: int = 150
    analyses: tuple[str, ...] = field(default_factory=job_analyses)
    analysis_pairs: int = 16
    n_boot: int = DEFAULT_BOOT
    n_splits: int = 20
    n_perm: int = 50
    channels_top: int = 10
    positions: bool = True
    seed: int = 0
    max_rank: int = 1
    templates: str | int = "best"
    shots: int | None = None

    def __post_init__(self) -> None:
        valid = job_analyses()
        unknown = [a for a in self.analyses if a not in valid]
        if unknown:
            raise InputError(f"unknown analyses {unknown}; valid: {', '.join(valid)}")
        if len(self.relations) < 2:
            raise InputError(f"the main job compares at least 2 relations, got {len(self.relations)}")
        if not 0.0 < self.target_faithfulness <= 1.0:
            raise InputError(f"--target-faithfulness must lie in (0, 1], not {self.target_faithfulness}")
        for name in ("max_pairs", "analysis_pairs"):
            if getattr(self, name) < 4:
                raise InputError(f"{name.replace('_', '-')} must be at least 4, not {getattr(self, name)}")
        if self.reuse_size < 1 or self.channels_top < 1 or self.max_edges < 1:
            raise InputError("reuse_size, max_edges and channels_top must be at least 1")

    def score_settings(self) -> ScoreSettings:
        return ScoreSettings(
            ig_steps=self.ig_steps,
            max_pairs=self.max_pairs,
            seed=self.seed,
            max_rank=self.max_rank,
            templates=self.templates,
            shots=self.shots,
        )

    def noise(self) -> NoiseSettings:
        return NoiseSettings(n_boot=self.n_boot, n_splits=self.n_splits, n_perm=self.n_perm, seed=self.seed)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def relation_digest(relation: Relation) -> str:
    """SHA-256 of a relation's content (templates and facts), whatever file it came from."""
    text = json.dumps(relation_to_json(relation), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def strongest_heads(circuit: Circuit, k: int = 12) -> list[str]:
    """The ``k`` heads whose outgoing circuit edges carry the largest total ``|score|``, strongest first."""
    strength: dict[str, float] = {}
    for (sender, _), score in circuit.edges.items():
        if sender.startswith("a"):
            strength[sender] = strength.get(sender, 0.0) + abs(score)
    return sorted(strength, key=lambda h: (-strength[h], h))[:k]


def settings_dict(settings: ScoreSettings) -> dict[str, Any]:
    """The settings as plain JSON for a stage key; a setting added later is left out at its implied default,
    so adding it does not invalidate stages finished before it existed."""
    plain = json.loads(
        json.dumps(dataclasses.asdict(settings), default=lambda v: getattr(v, "value", str(v)))
    )
    return {k: v for k, v in plain.items() if IMPLIED.get(k, object()) != v}
