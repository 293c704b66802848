"""Intervention jobs: ``circuits intervene`` on one relation, and the causal reuse test across relations.

- :func:`run_intervene` makes a relation's prompt pairs with a held-out split,
  applies node and edge edits (:mod:`circuits.mechanisms.interventions`) and
  writes ``intervene.json`` / ``intervene.svg`` (its record:
  :class:`~circuits.jobs.intervene_record.InterventionRecord`).
- :func:`run_reuse_test` reads the circuits a reuse sweep stored in the gallery
  (``circuits reuse``), takes the heads each circuit uses, the shared core
  (heads in at least ``fraction`` of the circuits), and for each relation
  ablates the core, an equal number of the relation's own specific heads and
  an equal number of random heads outside its circuit, on the held-out prompts
  of the split the circuit was found with; writes ``reuse_test.json`` /
  ``reuse_test.svg``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from circuits.attribution.harness import Harness
from circuits.circuit import Circuit
from circuits.draw.intervention_figures import intervention_figure, reuse_test_figure
from circuits.graph import GraphShape
from circuits.io import atomic_write_text, record_json
from circuits.jobs.intervene_record import InterventionPrompts, InterventionRecord
from circuits.jobs.mechanisms import PromptChoice, choice_pairs, write_record
from circuits.jobs.reuse_test_record import (
    HEAD_RULE,
    SPECIFIC_RULE,
    ReuseTestMeasures,
    ReuseTestRecord,
    ReuseTestRow,
)
from circuits.mechanisms.interventions import (
    METRICS,
    Edit,
    InterventionResult,
    edited_logits,
    intervene,
    measure,
    paired_intervals,
    parse_edits,
    scoring_means,
)
from circuits.models import LoadedModel, load_model
from circuits.progress import progress_bar
from circuits.relations import load_relation
from circuits.relations.pairs import PairSet, batch_pairs, remake_pairs
from circuits.relations.schema import Relation
from circuits.store import RELATION, Gallery, load_scored, safe_name
from circuits.uncertainty import DEFAULT_BOOT, Interval
from circuits.vocab import Ablation, InputError, choice, head_name, parse_node

__all__ = ["HEAD_RULE", "SPECIFIC_RULE", "circuit_heads", "run_intervene", "run_reuse_test"]


def run_intervene(
    model: LoadedModel,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    scale: Sequence[str] = (),
    ablate: Sequence[str] = (),
    subspace: Sequence[str] = (),
    split: str = "heldout",
    heldout_fraction: float = 0.4,
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[InterventionResult, InterventionRecord, list[Path]]:
    """Edit a model and measure a relation's prompts before and after; returns the result, record and files.

    The pairs are the known facts in the seeded order scoring uses, split
    with ``heldout_fraction`` (the default split of ``circuits score``, so
    with the same seed and filter the held-out prompts are those a scored
    graph was not made with). ``scale``, ``ablate`` and ``subspace`` are the
    specs of :func:`~circuits.mechanisms.interventions.parse_edits`. The
    record's ``to_dict()`` is what ``intervene.json`` holds.

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> result, record, files = run_intervene(model, "country_capital_city",
    ...     PromptChoice(max_pairs=8, max_rank=10**9), ablate=["a1.h0:zero"], progress=False)
    >>> record.edits, record.split, record.n_prompts, record.prompts.n_heldout, files
    (['ablate a1.h0:zero'], 'heldout', 3, 3, [])
    """
    choice = choice or PromptChoice()
    edits = parse_edits(model, scale=scale, ablate=ablate, subspace=subspace)
    pairs = choice_pairs(model, relation, choice, heldout_fraction=heldout_fraction)
    result = intervene(model, pairs, edits, split=split, n_boot=n_boot, seed=choice.seed, progress=progress)
    prompts = InterventionPrompts(
        choice=choice.as_dict(),
        template=pairs.template,
        n_facts=pairs.n_facts,
        n_known=pairs.n_known,
        heldout_fraction=heldout_fraction,
        n_pairs=len(pairs.pairs),
        n_scoring=len(pairs.scoring),
        n_heldout=len(pairs.heldout),
    )
    record = InterventionRecord.from_dict({**result.as_dict(), "prompts": prompts.to_dict()})
    files = write_record(out, store, "intervene", record.to_dict(), intervention_figure)
    return result, record, files


# ------------------------------------------------------------------ the causal reuse test


def circuit_heads(circuit: Circuit) -> list[str]:
    """The heads a circuit uses, in forward order (see :data:`HEAD_RULE`).

    >>> from circuits.graph import GraphShape
    >>> c = Circuit(GraphShape(2, 2, 1), {("a0.h1", "m1"): -1.0, ("input", "a1.h0<q>"): -1.0,
    ...                                   ("m0", "a1.h0<k>"): -0.5})
    >>> circuit_heads(c)
    ['a0.h1', 'a1.h0']
    """
    shape = circuit.shape
    grouped = shape.n_kv_heads != shape.n_heads
    heads = set()
    for sender, receiver in circuit.edges:
        for name in (sender, receiver):
            kind, layer, head, qkv = parse_node(name)
            if kind == "head" and (qkv in (None, "q") or not grouped):
                heads.add(head_name(layer, head))  # type: ignore[arg-type]
    return sorted(heads, key=lambda n: parse_node(n)[1:3])  # type: ignore[arg-type,return-value]


def _head_weights(circuit: Circuit, gallery: Gallery, model: str) -> tuple[dict[str, float], str]:
    """Total |edge score| of every head, from the relation's scored graph (else from the circuit's edges)."""
    shape = circuit.shape
    grouped = shape.n_kv_heads != shape.n_heads
    weights: dict[str, float] = {}
    try:
        graph = load_scored(gallery.folder(model, str(circuit.relation), "scored"))
    except InputError:
        graph = None
    if graph is not None and graph.shape == shape:
        scores = np.abs(graph.scores)
        for layer in range(shape.n_layers):
            for h in range(shape.n_heads):
                total = (
                    scores[shape.head_sender(layer, h)].sum() + scores[:, shape.q_receiver(layer, h)].sum()
                )
                if not grouped:
                    total += (
                        scores[:, shape.k_receiver(layer, h)].sum()
                        + scores[:, shape.v_receiver(layer, h)].sum()
                    )
                weights[head_name(layer, h)] = float(total)
        return weights, "scored graph"
    for (sender, receiver), score in circuit.edges.items():
        for name in (sender, receiver):
            kind, at, head, qkv = parse_node(name)
            if kind == "head" and (qkv in (None, "q") or not grouped):
                key = head_name(at, head)  # type: ignore[arg-type]
                weights[key] = weights.get(key, 0.0) + abs(score)
    return weights, "circuit edges (no scored graph stored)"


def _circuit_pairs(model: LoadedModel, circuit: Circuit, gallery: Gallery, max_pairs: int | None) -> PairSet:
    """The pairs the circuit's graph was scored with, remade from its provenance (same split)."""
    p = circuit.provenance
    name = str(circuit.relation)
    missing = [k for k in ("template", "split_seed", "heldout_fraction") if k not in p]
    if missing:
        raise InputError(
            f"circuit {circuit.label()!r} of {name!r} does not record {', '.join(missing)}; "
            "its pairs cannot be remade (store it again with `circuits reuse`)"
        )
    file = gallery.folder(model.name, name, "scored") / RELATION
    source = str(p.get("relation_source", ""))
    rel = load_relation(file if file.is_file() else source.removeprefix("bundled:") or name)
    rel = dataclasses.replace(rel, name=name)
    stored_cap = p.get("max_pairs")
    cap = stored_cap if max_pairs is None else max_pairs
    if max_pairs is not None and (stored_cap is None or max_pairs < stored_cap):
        raise InputError(
            f"--max-pairs {max_pairs} would put prompts the {name} circuit was scored on into the "
            f"held-out split; it was scored with max_pairs={stored_cap}: give at least that "
            "(or leave --max-pairs out)"
        )
    return remake_pairs(model, rel, p, max_pairs=cap)


def _find_circuits(
    gallery: Gallery,
    model: str,
    relations: Sequence[str],
    circuit: str | None,
) -> dict[str, Circuit]:
    stored = gallery.circuits(model, circuit)
    out: dict[str, Circuit] = {}
    for arg in relations:
        name = arg
        if not gallery.folder(model, arg).is_dir():
            try:
                name = load_relation(arg).name
            except InputError:
                name = arg
        key = safe_name(name)
        if key not in stored:
            folder = gallery.folder(model, name)
            where = folder / (circuit or "<circuit>") / "circuit.json"
            others = sorted(p.parent.name for p in folder.glob("*/circuit.json"))
            also = f" (it holds {', '.join(others)})" if others else ""
            raise InputError(
                f"no stored circuit for relation {name!r} of {model}: {where} does not exist{also}; "
                f"make it with `circuits reuse {' '.join(relations)} --model {model} "
                f"--store {gallery.root}`"
            )
        out[name] = stored[key]
    return out


def _negated(iv: Interval) -> Interval:
    return Interval(0.0 - iv.value, 0.0 - iv.high, 0.0 - iv.low)


def _summaries(values: dict[str, dict[str, np.ndarray]], *, n_boot: int, seed: int) -> ReuseTestMeasures:
    """Per metric: every condition's interval, and the drops (``before −`` condition; core vs specific).

    All intervals come from the same bootstrap resamples of the prompts, so the drops are paired.
    """
    intervals, changes = paired_intervals(values, "before", n_boot=n_boot, seed=seed)
    base = {"specific": values["specific"], "core": values["core"], "core_matched": values["core_matched"]}
    _, versus = paired_intervals(base, "specific", n_boot=n_boot, seed=seed)
    by_metric: dict[str, dict[str, Interval]] = {}
    drops: dict[str, dict[str, Interval]] = {}
    for metric in METRICS:
        by_metric[metric] = {cond: intervals[cond][metric] for cond in values}
        drops[metric] = {cond: _negated(changes[cond][metric]) for cond in values if cond != "before"}
        # drop(core) − drop(specific) = (before − core) − (before − specific) = specific − core
        drops[metric]["core_vs_specific"] = _negated(versus["core"][metric])
        drops[metric]["matched_vs_specific"] = _negated(versus["core_matched"][metric])
    return ReuseTestMeasures(len(next(iter(values["before"].values()))), by_metric, drops)


def run_reuse_test(
    model: str | LoadedModel,
    relations: Sequence[str],
    *,
    store: str | Path = "graphs",
    circuit: str | None = None,
    ablation: str = "mean",
    fraction: float = 0.5,
    max_pairs: int | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    out: Path | None = None,
    save: bool = False,
    progress: bool = True,
) -> tuple[ReuseTestRecord, list[Path]]:
    """Does ablating the heads circuits share hurt every relation, and more than its own heads?

    For each relation's stored circuit (``<store>/<model>/<relation>/<circuit>``;
    the newest when ``circuit`` is not given) the heads it uses
    (:func:`circuit_heads`) are collected; the core is the heads in at least
    ``ceil(fraction * N)`` of the ``N`` circuits. On each relation's held-out
    prompts (remade from the circuit's provenance: the same template, filter,
    seed and split, so none was used to find the circuit) five conditions are
    measured: no ablation; the core ablated; as many of the relation's
    specific heads as the core has (see :data:`SPECIFIC_RULE`; all of them
    when it has fewer); the same number of core heads (``core_matched``, the
    core heads the relation's graph weighs most: a size-matched comparison);
    as many random heads outside its circuit and the core as the core has
    (seeded). Ablation ``mean`` uses the mean outputs over the relation's
    scoring prompts. Drops are ``before − after`` with paired bootstrap
    intervals; ``core_vs_specific`` is the drop of the core minus that of the
    specific heads, ``matched_vs_specific`` the same at equal sizes.
    ``pooled`` pools every relation's prompts.

    Returns the :class:`~circuits.jobs.reuse_test_record.ReuseTestRecord`
    (its ``to_dict()`` also written as ``reuse_test.json``/``.svg`` in ``out``
    and, with ``save``, in ``<store>/<model>/``) and the files written.
    """
    started = time.perf_counter()
    mode = Ablation(choice(Ablation, ablation, "ablation mode"))
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"--fraction must lie in (0, 1], not {fraction}")
    if len(relations) < 2:
        raise InputError(f"the reuse test compares at least 2 relations' circuits, got {len(relations)}")
    loaded = load_model(model) if isinstance(model, str) else model
    gallery = Gallery(store)
    circuits = _find_circuits(gallery, loaded.name, relations, circuit)
    shape = GraphShape.of(loaded)
    for name, c in circuits.items():
        if c.shape != shape:
            raise InputError(
                f"the stored circuit of {name!r} has graph shape {c.shape}, {loaded.name} has {shape}"
            )
    heads = {name: circuit_heads(c) for name, c in circuits.items()}
    counts = Counter(h for hs in heads.values() for h in hs)
    k = max(1, math.ceil(fraction * len(circuits) - 1e-9))
    core = sorted((h for h, n in counts.items() if n >= k), key=lambda n: parse_node(n)[1:3])  # type: ignore[arg-type,return-value]
    if not core:
        raise InputError(f"no head is in at least {k} of the {len(circuits)} circuits; lower --fraction")
    all_heads = [head_name(layer, h) for layer in range(shape.n_layers) for h in range(shape.n_heads)]
    harness = Harness(loaded)
    rows: list[ReuseTestRow] = []
    pooled: dict[str, list[dict[str, np.ndarray]]] = {}
    bar = progress_bar(len(circuits), "reuse-test: relations", enabled=progress)
    for index, (name, c) in enumerate(circuits.items()):
        t0 = time.perf_counter()
        pairs = _circuit_pairs(loaded, c, gallery, max_pairs)
        if not pairs.heldout:
            raise InputError(f"relation {name!r}: its circuit's split has no held-out pairs")
        batch = batch_pairs(pairs.heldout, pad=loaded.pad_id)
        means = scoring_means(harness, pairs) if mode is Ablation.MEAN else None
        weights, ranked_by = _head_weights(c, gallery, loaded.name)
        own = [h for h in heads[name] if h not in core]
        own.sort(key=lambda h: -weights.get(h, 0.0))
        specific = own[: len(core)]
        outside = [h for h in all_heads if h not in heads[name] and h not in core]
        rng = np.random.default_rng([seed, index])
        random_heads = sorted(
            (str(h) for h in rng.choice(outside, size=min(len(core), len(outside)), replace=False)),
            key=lambda n: parse_node(n)[1:3],
        )  # type: ignore[arg-type,return-value]
        matched = sorted(core, key=lambda h: -weights.get(h, 0.0))[: len(specific)]
        sets = {"core": core, "core_matched": matched, "specific": specific, "random": random_heads}
        values = {"before": measure(edited_logits(harness, batch, []), batch)}
        for cond, chosen in sets.items():
            edits = [Edit("ablate", h, ablation=mode) for h in chosen]
            if not edits:
                values[cond] = values["before"]
            elif cond == "core_matched" and len(chosen) == len(core):
                values[cond] = values["core"]
            else:
                values[cond] = measure(edited_logits(harness, batch, edits, means=means), batch)
        row = ReuseTestRow(
            relation=name,
            circuit=str(c.name),
            n_scoring_prompts=len(pairs.scoring),
            n_circuit_heads=len(heads[name]),
            n_core=len(core),
            n_core_in_circuit=len([h for h in core if h in heads[name]]),
            n_specific_available=len(own),
            specific_heads=specific,
            core_matched_heads=matched,
            random_heads=random_heads,
            heads_ranked_by=ranked_by,
            measures=_summaries(values, n_boot=n_boot, seed=seed),
            seconds=round(time.perf_counter() - t0, 2),
        )
        rows.append(row)
        for cond, v in values.items():
            pooled.setdefault(cond, []).append(v)
        bar.update(1)
    bar.close()
    joined = {cond: {m: np.concatenate([v[m] for v in vs]) for m in METRICS} for cond, vs in pooled.items()}
    ordered = sorted(counts, key=lambda n: (-counts[n], parse_node(n)[1:3]))
    record = ReuseTestRecord(
        model=loaded.name,
        gallery=str(gallery.root),
        circuit=circuit,
        circuits={n: str(c.name) for n, c in circuits.items()},
        ablation=mode.value,
        fraction=fraction,
        k=k,
        core=core,
        head_counts={h: counts[h] for h in ordered},
        max_pairs=max_pairs,
        relations=rows,
        pooled=_summaries(joined, n_boot=n_boot, seed=seed),
        n_boot=n_boot,
        seed=seed,
        seconds=round(time.perf_counter() - started, 2),
    )
    files: list[Path] = []
    if out is not None or save:
        stored = record.to_dict()
        svg = reuse_test_figure(stored)
        text = record_json(stored)
        if out is not None:
            atomic_write_text(Path(out) / "reuse_test.json", text)
            atomic_write_text(Path(out) / "reuse_test.svg", svg)
            files += [Path(out) / "reuse_test.json", Path(out) / "reuse_test.svg"]
        if save:  # a gallery folder of its own, listed in the manifest
            folder = gallery.save_files(
                loaded.name,
                "reuse_test",
                {"reuse_test.json": text, "reuse_test.svg": svg},
                {"relations": [row.relation for row in rows]},
            )
            files += [folder / "reuse_test.json", folder / "reuse_test.svg"]
    return record, files
