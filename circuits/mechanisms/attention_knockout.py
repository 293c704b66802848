"""Attention knockout (Geva et al. 2023): which positions the last token must read, and in which layers.

For a window of ``k`` consecutive layers ``[l, l + k)`` and a source set ``S``
of position roles (:mod:`circuits.relations.roles`), the pre-softmax attention
score from the ``last`` query position to every position of ``S`` is set to
``−∞`` in every query head of those layers (in a grouped-query model each query
head is blocked on its own; the shared key/value heads are untouched). The
effect on a prompt is the relative change of the answer's probability,
``(p_knock − p) / p``; the curve over ``l`` is its mean over prompts with a 95%
bootstrap interval.

Cost: one clean forward caches the keys and values of every position before
the last one, which knockout leaves untouched, and the residual stream of the
last position entering every layer; each (window, source set) is then one
batched forward of the last position alone, starting at the window's first
layer, since the layers below it are untouched. When a source set blocks
every position the last token can see, that head reads nothing (its attention
weights are set to zero rather than left undefined).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.attribution.prefix import SharedPrefix, shift_rows
from circuits.mechanisms.lens import Prompts
from circuits.progress import progress_bar
from circuits.records.base import pairs_record
from circuits.records.knockout import KnockoutCurve, KnockoutRecord, KnockoutSettings
from circuits.relations.roles import parse_source_sets, source_name, source_positions
from circuits.uncertainty import DEFAULT_BOOT, bootstrap_intervals, mean_interval
from circuits.vocab import InputError, hook_point

if TYPE_CHECKING:
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairSet

__all__ = ["default_window", "knockout", "run"]


def default_window(n_layers: int) -> int:
    """Window length scaled with depth: ``round(n_layers / 5)`` (Geva used 9 of 48), at least 1.

    >>> default_window(30), default_window(48), default_window(3)
    (6, 10, 1)
    """
    return max(1, round(n_layers / 5))


def _blocking_hooks(layers: range, blocked: Tensor, query: Tensor, fully: Tensor) -> list[tuple[str, Any]]:
    """Hooks setting the ``query`` row's attention scores to −∞ on ``blocked`` [rows, keys] key slots.

    A row marked in ``fully`` has every position it can see blocked: its
    query then reads nothing (weights zero), rather than whatever the softmax
    of masked-out scores would spread over padding.
    """
    rows = torch.arange(len(query))

    def on_scores(scores: Tensor, hook: Any) -> Tensor:
        n_rows, _, n_query, n_keys = scores.shape
        mask = torch.zeros(n_rows, 1, n_query, n_keys, dtype=torch.bool, device=scores.device)
        mask[rows, 0, query.to(scores.device)] = blocked[:, :n_keys].to(scores.device)
        return scores.masked_fill(mask, float("-inf"))

    def on_pattern(pattern: Tensor, hook: Any) -> Tensor:
        pattern = pattern.clone()
        pattern[rows[fully], :, query[fully].to(pattern.device)] = 0.0
        return pattern

    hooks: list[tuple[str, Any]] = []
    for layer in layers:
        hooks.append((hook_point("attn_scores", layer), on_scores))
        if bool(fully.any()):
            hooks.append((hook_point("pattern", layer), on_pattern))
    return hooks


def knockout(
    model: LoadedModel,
    prompts: Prompts,
    *,
    window: int | None = None,
    sources: Sequence[Sequence[str]] = (("subject",), ("relation",), ("last",)),
    block_first: bool = False,
    batch_size: int = 32,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    relation: str = "",
    template: str = "",
    progress: bool = True,
    shared_prefix: bool = True,
) -> KnockoutRecord:
    """Knockout curves: blocking attention from the last position to each source set, per layer window.

    Parameters
    ----------
    model : LoadedModel
        The model (any pre-norm decoder the engine hooks; grouped-query native).
    prompts : Prompts
        The prompts (known facts), their answers and position roles.
    window : int, optional
        Layers per window, ``0 <= window <= n_layers``; default
        :func:`default_window`. Window starts run over ``0 .. n_layers - window``.
    sources : sequence of role tuples
        The source sets, e.g. ``[("subject",), ("relation",), ("last",)]``
        (:func:`~circuits.relations.roles.parse_source_sets`).
    block_first : bool
        Also block the first token (the attention sink), reported separately as
        :attr:`~circuits.records.knockout.KnockoutRecord.sink`.
    n_boot, seed
        Bootstrap resamples and their seed.
    shared_prefix : bool
        Knockout changes only the last position's attention, so every earlier
        position is the clean run's: they run once and are cached
        (:mod:`circuits.attribution.prefix`), and each knockout forward runs
        the last position alone. The effects are the same either way.

    Returns
    -------
    KnockoutRecord
        One curve per source set; prompts where a role of the set is empty
        are skipped for that set and listed.
    """
    started = time.perf_counter()
    n_layers = int(model.n_layers)
    window = default_window(n_layers) if window is None else int(window)
    if not 0 <= window <= n_layers:
        raise InputError(
            f"--window must lie in [0, {n_layers}] for {model.name} ({n_layers} layers), not {window}"
        )
    sets = [tuple(s) for s in sources]
    if not sets and not block_first:
        raise InputError("no source sets to block; name roles such as 'subject,relation,last'")
    if block_first:
        sets = [s for s in sets if s != ("first",)] + [("first",)]
    harness = Harness(model)
    device = model.device
    tokens = prompts.tokens.to(device)
    last = prompts.last
    starts = list(range(0, n_layers - window + 1)) if window else list(range(n_layers))
    # every position before the last one is untouched by knockout: cache it, run the last one alone
    prefix = SharedPrefix.build(harness, tokens, last) if shared_prefix else None
    run_tokens = tokens if prefix is None else shift_rows(tokens, last, 1, 0)
    query = last if prefix is None else torch.zeros_like(last)

    # clean run: answer probability and the residual stream entering every layer
    cache: dict[int, Tensor] = {}

    def keep(x: Tensor, hook: Any, layer: int = 0) -> Tensor:
        cache[layer] = x.detach()
        return x

    hooks = [
        (hook_point("resid_pre", layer), lambda x, hook, layer=layer: keep(x, hook, layer))
        for layer in range(n_layers)
    ]
    with torch.no_grad(), harness.sharing(prefix):
        final = harness.run_to_final(run_tokens, hooks)
        base = harness.last_logits(final, query).float().softmax(-1)
    rows = prompts.rows()
    p_clean = base[rows, prompts.answer.to(base.device)].cpu().double().numpy()
    n_forwards = 1

    curves: list[KnockoutCurve] = []
    total = len(sets) * len(starts)
    bar = progress_bar(total, "knockout", enabled=progress)
    for source in sets:
        keep_rows, skipped = [], []
        blocked = torch.zeros(tokens.shape, dtype=torch.bool)
        for i, roles in enumerate(prompts.roles):
            positions = source_positions(roles, source)
            if positions is None:
                skipped.append(prompts.texts[i])
                continue
            keep_rows.append(i)
            blocked[i, positions] = True
        name = source_name(source)
        if not keep_rows:
            raise InputError(
                f"source set {name!r}: every prompt has an empty role "
                f"({len(skipped)} prompts, e.g. {skipped[0]!r})"
            )
        idx = torch.tensor(keep_rows)
        fully = blocked.sum(1) == last + 1
        keys = blocked if prefix is None else prefix.key_layout(blocked, 1)
        effects = np.zeros((len(keep_rows), len(starts)))
        for w, start in enumerate(starts):
            layers = range(start, start + window)
            probs = []
            for chunk in idx.split(batch_size):
                hooks = _blocking_hooks(layers, keys[chunk], query[chunk], fully[chunk])
                part = None if prefix is None else prefix.select(chunk)
                with torch.no_grad(), harness.sharing(part):
                    out = harness.run_to_final(cache[start][chunk.to(device)], hooks, start_layer=start)
                    p = harness.last_logits(out, query[chunk]).float().softmax(-1)
                probs.append(p[torch.arange(len(chunk)), prompts.answer[chunk].to(p.device)].cpu().double())
                n_forwards += 1
            p_knock = torch.cat(probs).numpy()
            effects[:, w] = (p_knock - p_clean[keep_rows]) / p_clean[keep_rows]
            bar.update(1)
        effect = bootstrap_intervals(effects, n_boot=n_boot, seed=seed)
        curves.append(KnockoutCurve(name, starts, effect, len(keep_rows), skipped, effects))
    bar.close()
    sink = curves.pop() if block_first else None
    provenance = KnockoutRecord.provenance_of(
        model.name,
        relation,
        template=template,
        n_prompts=len(prompts),
        seed=seed,
        n_boot=n_boot,
        seconds=time.perf_counter() - started,
    )
    baseline = mean_interval(p_clean, n_boot=n_boot, seed=seed)
    return KnockoutRecord(provenance, n_layers, window, baseline, curves, sink, n_forwards)


def run(
    model: LoadedModel,
    pairs: PairSet,
    settings: KnockoutSettings,
    *,
    seed: int = 0,
    progress: bool = True,
) -> KnockoutRecord:
    """Knockout curves of a relation's known-fact pairs under ``settings`` (the registry's entry point).

    >>> from circuits import load_model
    >>> from circuits.jobs.mechanisms import PromptChoice, choice_pairs
    >>> model = load_model("tiny-llama")
    >>> pairs = choice_pairs(model, "country_capital_city", PromptChoice(max_pairs=6, max_rank=10**9))
    >>> record = run(model, pairs, KnockoutSettings(), progress=False)
    >>> [c.source for c in record.curves], record.window, len(record.curves[0].starts)
    (['subject', 'relation', 'last'], 1, 3)
    """
    sets = parse_source_sets(settings.sources)
    record = knockout(
        model,
        Prompts.of(pairs.pairs, model.pad_id),
        window=settings.window,
        sources=sets,
        block_first=settings.block_first,
        n_boot=settings.n_boot,
        seed=seed,
        relation=pairs.relation.name,
        template=pairs.template,
        progress=progress,
    )
    return record.with_prompts(pairs_record(pairs))
