"""Subject enrichment (Geva et al. 2023): the subject's last token fills with its attributes.

After each layer the residual stream at the last subject token is decoded with
the logit lens (:func:`~circuits.mechanisms.lens.decode`); the *attribute rate*
is the share of its top-``k`` tokens (``k = 50``) that belong to the subject's
attribute set (:mod:`circuits.mechanisms.attributes`); its chance level (the
``null`` curve) is the same rate against another prompt's subject's set. The same curve is
measured with the MLP (or attention) updates at the subject positions removed
(their outputs set to zero there) in the early layers ``[0, split)`` or the
late layers ``[split, n_layers)``, ``split = n_layers // 2`` by default: if the
MLPs of the early layers enrich the subject, removing them lowers the rate.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from circuits.mechanisms.attributes import attribute_tokens, attribute_words, normalise_token
from circuits.mechanisms.lens import Prompts, decode, run_with_hooks
from circuits.progress import progress_bar
from circuits.records.base import pairs_record
from circuits.records.enrichment import CONDITIONS, EnrichmentRecord, EnrichmentSettings
from circuits.relations import load_relation
from circuits.relations.schema import bundled_relations
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_intervals, mean_interval
from circuits.vocab import InputError, hook_point

if TYPE_CHECKING:
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairSet

__all__ = ["CONDITIONS", "enrichment", "run"]


class _TokenText:
    """Normalised text of token ids, decoded once each."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        if token not in self.cache:
            self.cache[token] = normalise_token(self.tokenizer.decode([token]))
        return self.cache[token]


def _removal_hooks(condition: str, split: int, n_layers: int, subject_mask: Tensor) -> list[tuple[str, Any]]:
    if condition == "clean":
        return []
    sublayer, when = condition.split("-")
    layers = range(0, split) if when == "early" else range(split, n_layers)
    point = "mlp_out" if sublayer == "mlp" else "attn_out"
    keep = (~subject_mask)[:, :, None]

    def remove(x: Tensor, hook: Any) -> Tensor:
        return x * keep[:, : x.shape[1]].to(x.dtype).to(x.device)

    return [(hook_point(point, layer), remove) for layer in layers]


def enrichment(
    model: LoadedModel,
    prompts: Prompts,
    attributes: dict[str, set[str]],
    *,
    top_k: int = 50,
    split: int | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    relation: str = "",
    template: str = "",
    progress: bool = True,
) -> EnrichmentRecord:
    """Attribute rate per layer at the last subject token, clean and with early/late updates removed.

    Parameters
    ----------
    model : LoadedModel
    prompts : Prompts
        Known-fact prompts with their roles.
    attributes : dict
        Subject -> attribute words (:func:`~circuits.mechanisms.attributes.attribute_words`).
        A prompt whose subject has no attribute token is left out (counted).
    top_k : int
        Tokens decoded per layer (Geva et al. used 50).
    split : int, optional
        First "late" layer; default ``n_layers // 2``.
    """
    started = time.perf_counter()
    n_layers = int(model.n_layers)
    split = n_layers // 2 if split is None else int(split)
    if not 0 < split < n_layers:
        raise InputError(f"--split must lie in [1, {n_layers - 1}] for {model.name}, not {split}")
    vocab = int(model.bridge.W_U.shape[-1])
    if not 0 < top_k <= vocab:
        raise InputError(f"--top-k must lie in [1, {vocab}], not {top_k}")
    text = _TokenText(model.tokenizer)

    def first_token(word: str) -> str:
        ids = model.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        return model.tokenizer.decode(ids[:1]) if ids else ""

    sets = [attribute_tokens(attributes.get(s, ()), s, first_token) for s in prompts.subjects]
    use = [i for i, s in enumerate(sets) if s]
    if not use:
        raise InputError(
            f"relation {relation!r}: no prompt's subject has attribute words in the bundled "
            "relations; enrichment needs subjects the relations say something about"
        )
    rows = torch.tensor(use)
    tokens = prompts.tokens[rows].to(model.device)
    last_subject = torch.tensor([prompts.roles[i].last_subject for i in use])
    subject_mask = torch.zeros(tokens.shape, dtype=torch.bool)
    for r, i in enumerate(use):
        start, stop = prompts.roles[i].subject
        subject_mask[r, start:stop] = True
    picked = torch.arange(len(use))

    # the null: each prompt scored against the next prompt's attribute set (another subject's)
    shifted = use[1:] + use[:1]

    def rate_of(resid: Tensor, against: list[int] = use) -> np.ndarray:
        """[rows, d] residual streams -> attribute rate per row, against the sets of ``against``."""
        top = decode(model, resid).topk(top_k, dim=-1).indices.cpu()
        out = np.zeros(len(use))
        for r, i in enumerate(against):
            out[r] = sum(text(int(t)) in sets[i] for t in top[r]) / top_k
        return out

    rates: dict[str, list[Interval]] = {}
    embedding = None
    examples: list[dict[str, Any]] = []
    bar = progress_bar(len(CONDITIONS), "enrichment", enabled=progress)
    for condition in CONDITIONS:
        store: dict[int, Tensor] = {}

        def grab(x: Tensor, hook: Any, layer: int = 0, store: dict[int, Tensor] = store) -> Tensor:
            store[layer] = x[picked, last_subject.to(x.device)].detach()
            return x

        hooks = _removal_hooks(condition, split, n_layers, subject_mask)
        hooks += [
            (hook_point("resid_post", layer), lambda x, hook, layer=layer: grab(x, hook, layer))
            for layer in range(n_layers)
        ]
        if condition == "clean":
            hooks.append((hook_point("resid_pre", 0), lambda x, hook: grab(x, hook, -1)))
        run_with_hooks(model, tokens, hooks, stop_at=hook_point("final_in"))
        per_layer = np.stack([rate_of(store[layer]) for layer in range(n_layers)], axis=1)
        rates[condition] = bootstrap_intervals(per_layer, n_boot=n_boot, seed=seed)
        if condition == "clean":
            null = np.stack([rate_of(store[layer], shifted) for layer in range(n_layers)], axis=1)
            rates["null"] = bootstrap_intervals(null, n_boot=n_boot, seed=seed)
            embedding = mean_interval(rate_of(store[-1]), n_boot=n_boot, seed=seed)
            peak = int(np.argmax(per_layer.mean(0)))
            top = decode(model, store[peak]).topk(top_k, dim=-1).indices.cpu()
            for r, i in enumerate(use[:5]):
                found = [text(int(t)) for t in top[r] if text(int(t)) in sets[i]]
                examples.append(
                    {
                        "subject": prompts.subjects[i],
                        "layer": peak,
                        "attributes_in_top": found,
                        "n_attribute_tokens": len(sets[i]),
                    }
                )
        bar.update(1)
    bar.close()
    assert embedding is not None
    provenance = EnrichmentRecord.provenance_of(
        model.name,
        relation,
        template=template,
        n_prompts=len(use),
        seed=seed,
        n_boot=n_boot,
        seconds=time.perf_counter() - started,
    )
    return EnrichmentRecord(
        provenance, n_layers, top_k, split, rates, embedding, len(prompts) - len(use), examples
    )


def run(
    model: LoadedModel,
    pairs: PairSet,
    settings: EnrichmentSettings,
    *,
    seed: int = 0,
    progress: bool = True,
) -> EnrichmentRecord:
    """Attribute rates of a relation's subjects; attribute sets from the bundled relations and this one."""
    # the relation itself counts too: an unseen LRE file's facts are attributes of its subjects
    words = attribute_words([*(load_relation(n) for n in bundled_relations()), pairs.relation])
    record = enrichment(
        model,
        Prompts.of(pairs.pairs, model.pad_id),
        words,
        top_k=settings.top_k,
        split=settings.split,
        n_boot=settings.n_boot,
        seed=seed,
        relation=pairs.relation.name,
        template=pairs.template,
        progress=progress,
    )
    return record.with_prompts(pairs_record(pairs))
