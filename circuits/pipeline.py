"""From a relation to a scored graph, and from a scored graph to its evaluation.

These are the steps the ``circuits score`` and ``circuits evaluate`` commands
run; they are plain functions so a script can run them too.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from circuits.attribution import Harness, attribute_edges, exact_edges, mean_senders
from circuits.data import PairSet, batch_pairs, load_relation, make_pairs
from circuits.evaluate import Evaluation, Evaluator, evaluate_graph
from circuits.graph import GraphShape, ScoredGraph
from circuits.store import RELATION, load_scored
from circuits.vocab import Ablation, InputError, Method, Metric

__all__ = ["ScoreSettings", "evaluate_scored", "progress_bar", "score_pairs", "score_relation"]

log = logging.getLogger(__name__)


def progress_bar(total: int, desc: str, *, enabled: bool = True) -> Any:
    """A tqdm bar on stderr (silent when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


@dataclass(frozen=True)
class ScoreSettings:
    """How a relation is scored; every field lands in the graph's metadata."""

    method: Method = Method.EAP_IG
    metric: Metric = Metric.LOGIT_DIFF
    ablation: Ablation = Ablation.COUNTERFACTUAL
    ig_steps: int = 5
    seed: int = 0
    batch_size: int = 16
    max_pairs: int | None = None
    exact_top: int = 500
    heldout_fraction: float = 0.4
    max_rank: int = 1
    min_prob: float = 0.0

    def __post_init__(self) -> None:
        for name, enum in (("method", Method), ("metric", Metric), ("ablation", Ablation)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))
            except ValueError:
                valid = ", ".join(e.value for e in enum)
                raise InputError(f"unknown {name} {value!r}; valid: {valid}") from None
        if self.ig_steps < 1 or self.batch_size < 1:
            raise InputError("ig_steps and batch_size must be at least 1")


def score_pairs(model: Any, pairs: PairSet, settings: ScoreSettings, *, progress: bool = True) -> ScoredGraph:
    """Score every edge of ``model`` on the scoring split of ``pairs``."""
    import circuits

    torch.manual_seed(settings.seed)
    harness = Harness(model)
    shape = harness.shape
    scoring = pairs.scoring
    pad = int(model.tokenizer.pad_token_id or 0)
    means = None
    if settings.ablation is Ablation.MEAN:
        means = mean_senders(harness, batch_pairs(pairs.pairs, pad=pad))
    steps = 1 if settings.method is Method.EAP else settings.ig_steps
    total = torch.zeros(shape.n_senders, shape.n_receivers, dtype=torch.float64)
    started = time.perf_counter()
    chunks = [scoring[i : i + settings.batch_size] for i in range(0, len(scoring), settings.batch_size)]
    bar = progress_bar(len(scoring), f"{settings.method.value} {pairs.relation.name}", enabled=progress)
    for chunk in chunks:
        batch = batch_pairs(chunk, pad=pad)
        total += attribute_edges(harness, batch, metric=settings.metric, ablation=settings.ablation,
                                 ig_steps=steps, means=means).double().cpu()  # fmt: skip
        bar.update(len(chunk))
    bar.close()
    scores = (total / len(scoring)).numpy().astype(np.float32)
    graph = ScoredGraph(shape, scores)
    refined = 0
    if settings.method is Method.EXACT:
        refined = _refine_exact(harness, graph, pairs, settings, means, pad, progress)
    graph.metadata = {
        "model": model.name, "relation": pairs.relation.name, "relation_source": pairs.relation.source,
        "template": pairs.template, "method": settings.method.value, "metric": settings.metric.value,
        "ablation": settings.ablation.value, "ig_steps": steps, "exact_refined_edges": refined,
        "n_pairs_scoring": len(scoring), "n_pairs_heldout": len(pairs.heldout),
        "n_facts": pairs.n_facts, "n_known": pairs.n_known,
        "n_no_counterfactual": pairs.n_no_counterfactual, "split_seed": pairs.seed,
        "seed": settings.seed, "heldout_fraction": settings.heldout_fraction,
        "max_pairs": settings.max_pairs, "known_filter": pairs.settings,
        "processing": model.processing, "package_version": circuits.__version__,
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    return graph


def _refine_exact(harness: Harness, graph: ScoredGraph, pairs: PairSet, settings: ScoreSettings,
                  means: Any, pad: int, progress: bool) -> int:  # fmt: skip
    """Replace the approximate scores of the top edges by exact patching scores."""
    top = graph.ranked(by="abs")
    if settings.exact_top > 0:
        top = top[: settings.exact_top]
    edges = [divmod(int(i), graph.shape.n_receivers) for i in top]
    exact = np.zeros(len(edges))
    bar = progress_bar(len(edges) * len(pairs.scoring), "exact patching", enabled=progress)
    for start in range(0, len(pairs.scoring), settings.batch_size):
        chunk = pairs.scoring[start : start + settings.batch_size]
        batch = batch_pairs(chunk, pad=pad)
        weights = len(chunk) / len(pairs.scoring)
        exact += weights * exact_edges(harness, batch, edges, metric=settings.metric,
                                       ablation=settings.ablation, means=means)  # fmt: skip
        bar.update(len(edges) * len(chunk))
    bar.close()
    rows, cols = zip(*edges, strict=True) if edges else ((), ())
    graph.scores[list(rows), list(cols)] = exact.astype(np.float32)
    return len(edges)


def score_relation(
    model: Any,
    relation: str | Path,
    settings: ScoreSettings | None = None,
    *,
    template: str | None = None,
    progress: bool = True,
) -> tuple[ScoredGraph, PairSet]:
    """Load a relation, make its prompt pairs and score the model's graph on them.

    ``template`` replaces the relation's first template (and is required for
    a CSV relation).
    """
    settings = settings or ScoreSettings()
    rel = load_relation(relation, template=template)
    if template is not None:
        rel = dataclasses.replace(rel, prompt_templates=(template, *rel.prompt_templates[1:]))
    pairs = make_pairs(model, rel, seed=settings.seed, heldout_fraction=settings.heldout_fraction,
                       max_pairs=settings.max_pairs, max_rank=settings.max_rank,
                       min_prob=settings.min_prob)  # fmt: skip
    return score_pairs(model, pairs, settings, progress=progress), pairs


def heldout_evaluator(
    model: Any,
    graph: ScoredGraph,
    pairs: PairSet | None = None,
    *,
    relation_file: Path | None = None,
    split: str = "heldout",
) -> Evaluator:
    """An Evaluator on the held-out (or scoring) pairs of the relation ``graph`` was scored on.

    ``pairs`` is remade from the graph's metadata (template, split seed,
    known-fact filter, pair cap) when not given; the relation is read from
    ``relation_file`` when it exists, else by the name in the metadata.
    """
    meta = graph.metadata
    if pairs is None:
        source: str | Path = meta["relation"]
        if relation_file is not None and relation_file.is_file():
            source = relation_file
        rel = dataclasses.replace(load_relation(source), name=meta["relation"])
        known = meta.get("known_filter", {})
        pairs = make_pairs(model, rel, template=meta.get("template"), seed=meta["split_seed"],
                           heldout_fraction=meta.get("heldout_fraction", 0.4),
                           max_rank=known.get("max_rank", 1), min_prob=known.get("min_prob", 0.0),
                           max_pairs=meta.get("max_pairs"))  # fmt: skip
    pad = int(model.tokenizer.pad_token_id or 0)
    harness = Harness(model)
    means = None
    if meta.get("ablation") == Ablation.MEAN.value:
        means = mean_senders(harness, batch_pairs(pairs.pairs, pad=pad))
    chosen = pairs.heldout if split == "heldout" else pairs.scoring
    return Evaluator(harness, batch_pairs(chosen, pad=pad), metric=meta["metric"],
                     ablation=meta["ablation"], means=means)  # fmt: skip


def evaluate_scored(
    directory: str | Path,
    *,
    model: Any = None,
    progress: bool = True,
    split: str = "heldout",
) -> tuple[Evaluation, ScoredGraph]:
    """Faithfulness of a stored scored graph on the held-out split of its relation."""
    from circuits.evaluate import FRACTIONS
    from circuits.models import load_model

    graph = load_scored(directory)
    meta = graph.metadata
    if model is None:
        model = load_model(meta["model"], processing=meta.get("processing", "none"))
    if GraphShape.of(model) != graph.shape:
        raise InputError(f"{directory}: the graph was scored on {meta['model']!r}, whose shape "
                         f"differs from {model.name!r}")  # fmt: skip
    evaluator = heldout_evaluator(model, graph, relation_file=Path(directory) / RELATION, split=split)
    bar = progress_bar(len(FRACTIONS), "evaluating", enabled=progress)
    result = evaluate_graph(evaluator, graph, seed=meta.get("seed", 0), progress=bar)
    bar.close()
    result.extra = {"split": split, "relation": meta["relation"], "model": meta["model"],
                    "method": meta["method"]}  # fmt: skip
    return result, graph
