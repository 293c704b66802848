"""Attribute extraction (Geva et al. 2023): which sublayers write the answer at the last position.

At the ``last`` position each attention sublayer's output and each MLP's output
is projected to the vocabulary through the final norm with the scale of the
clean run frozen (:class:`~circuits.mechanisms.lens.FrozenNorm`) and the
unembedding (no bias). An *extraction event* at layer ``l`` is the answer being
the top-1 token of that projection; the extraction rate is the share of prompts
with an event, per layer and sublayer type.

Per head the same projection of the head's own output ranks the answer; and a
head "stores" the subject -> answer mapping when the answer ranks high in
``norm(W_E[s]) W_V^h W_O^h W_U`` (its OV circuit applied to the embedding of the
subject's last token ``s``, before any context is mixed in).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from circuits.attribution.harness import Harness
from circuits.mechanisms.lens import FrozenNorm, Prompts, Recorder, answer_ranks, run_with_hooks
from circuits.progress import progress_bar
from circuits.records.base import pairs_record
from circuits.records.extraction import ExtractionRecord, ExtractionSettings, HeadExtraction
from circuits.uncertainty import DEFAULT_BOOT, bootstrap_intervals
from circuits.vocab import head_name, hook_point

if TYPE_CHECKING:
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairSet

__all__ = ["extraction", "run"]


def extraction(
    model: LoadedModel,
    prompts: Prompts,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    relation: str = "",
    template: str = "",
    progress: bool = True,
) -> ExtractionRecord:
    """Extraction rates per layer for attention and MLP outputs, and per-head answer ranks."""
    started = time.perf_counter()
    n_layers, n_heads = int(model.n_layers), int(model.n_heads)
    group = n_heads // int(model.n_kv_heads)
    harness = Harness(model)
    bridge = model.bridge
    tokens = prompts.tokens.to(model.device)
    last = prompts.last
    rec = Recorder(prompts.rows())
    store = rec.store
    hooks = [(hook_point("final_in"), rec.at("final", last))]
    for layer in range(n_layers):
        hooks += [(hook_point(p, layer), rec.at(f"{p}{layer}", last)) for p in ("attn_out", "mlp_out", "z")]
    run_with_hooks(model, tokens, hooks)
    norm = FrozenNorm(bridge.ln_final, store["final"])  # [n, 1] scale from the clean run
    W_U = bridge.W_U.detach().float()
    W_E = bridge.W_E.detach().float()
    answer = prompts.answer
    subject_tokens = torch.tensor(
        [int(prompts.tokens[i, r.last_subject]) for i, r in enumerate(prompts.roles)]
    )

    sub_ranks = {
        "attn_out": np.zeros((len(prompts), n_layers)),
        "mlp_out": np.zeros((len(prompts), n_layers)),
    }
    head_ranks = np.zeros((len(prompts), n_layers, n_heads))
    ov_ranks = np.zeros((len(prompts), n_layers, n_heads))
    bar = progress_bar(n_layers, "extraction", enabled=progress)
    with torch.no_grad():
        for layer in range(n_layers):
            for kind, ranks in sub_ranks.items():
                logits = norm(store[f"{kind}{layer}"]) @ W_U
                ranks[:, layer] = answer_ranks(logits, answer).numpy()
            w = harness.layers[layer]
            outputs = harness.head_writes(layer, store[f"z{layer}"])
            logits = norm(outputs, per_component=True) @ W_U  # [n, heads, vocab]
            head_ranks[:, layer] = answer_ranks(logits, answer[:, None].expand(-1, n_heads)).numpy()
            ln1 = FrozenNorm(bridge.blocks[layer].ln1, W_E[subject_tokens])
            embedded = ln1(W_E[subject_tokens])  # [n, d]
            # query head h reads key/value head h // group
            W_V = w.W_V.float().repeat_interleave(group, dim=0)
            values = torch.einsum("nd,hde->nhe", embedded, W_V)
            if w.b_V is not None:
                values = values + w.b_V.float().repeat_interleave(group, dim=0)
            written = torch.einsum("nhe,hed->nhd", values, w.W_O.float())
            post = harness.post_attn[layer]
            if post is not None:  # each head through the norm after attention as if it wrote alone
                written = written * post(written)
            ov_logits = FrozenNorm(bridge.ln_final, written)(written) @ W_U
            ov_ranks[:, layer] = answer_ranks(ov_logits, answer[:, None].expand(-1, n_heads)).numpy()
            bar.update(1)
    bar.close()
    heads = []
    for layer in range(n_layers):
        for h in range(n_heads):
            r, o = head_ranks[:, layer, h], ov_ranks[:, layer, h]
            heads.append(
                HeadExtraction(
                    head_name(layer, h),
                    float(np.median(r)),
                    float((r == 1).mean()),
                    float(np.median(o)),
                    float((o <= 10).mean()),
                )
            )
    attn_top1, mlp_top1 = (sub_ranks[k] == 1 for k in ("attn_out", "mlp_out"))
    totals = {"attn": float(attn_top1.any(1).mean()), "mlp": float(mlp_top1.any(1).mean())}
    provenance = ExtractionRecord.provenance_of(
        model.name,
        relation,
        template=template,
        n_prompts=len(prompts),
        seed=seed,
        n_boot=n_boot,
        seconds=time.perf_counter() - started,
    )
    return ExtractionRecord(
        provenance,
        n_layers,
        bootstrap_intervals(attn_top1, n_boot=n_boot, seed=seed),
        bootstrap_intervals(mlp_top1, n_boot=n_boot, seed=seed),
        heads,
        any_event=totals,
        attn_median_rank=np.median(sub_ranks["attn_out"], axis=0).tolist(),
        mlp_median_rank=np.median(sub_ranks["mlp_out"], axis=0).tolist(),
    )


def run(
    model: LoadedModel,
    pairs: PairSet,
    settings: ExtractionSettings,
    *,
    seed: int = 0,
    progress: bool = True,
) -> ExtractionRecord:
    """Extraction rates per layer (attention vs MLP) and the heads that rank the answer highest."""
    record = extraction(
        model,
        Prompts.of(pairs.pairs, model.pad_id),
        n_boot=settings.n_boot,
        seed=seed,
        relation=pairs.relation.name,
        template=pairs.template,
        progress=progress,
    )
    return record.with_prompts(pairs_record(pairs))
