"""Metrics read at each prompt's last position.

Each metric maps last-position logits ``[batch, vocab]`` to one value per
example; analyses average over examples.

- ``logit-diff``: logit of the clean answer minus logit of the counterfactual
  answer (the default);
- ``logprob`` / ``prob``: log-probability / probability of the clean answer;
- ``kl``: KL divergence from the clean next-token distribution to the current
  one (0 on the clean run, so its gradient there vanishes: prefer EAP-IG or
  exact patching with it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.vocab import InputError, Metric

__all__ = ["MetricFn", "make_metric"]


@dataclass(frozen=True)
class MetricFn:
    """A metric bound to the answers (and clean distribution) of one batch."""

    kind: Metric
    answer: Int[Tensor, " batch"]
    corrupt_answer: Int[Tensor, " batch"]
    clean_logprobs: Float[Tensor, "batch vocab"] | None = None

    def __call__(self, logits: Float[Tensor, "batch vocab"]) -> Float[Tensor, " batch"]:
        rows = torch.arange(logits.shape[0], device=logits.device)
        if self.kind is Metric.LOGIT_DIFF:
            return logits[rows, self.answer] - logits[rows, self.corrupt_answer]
        logprobs = logits.float().log_softmax(-1)
        if self.kind is Metric.LOGPROB:
            return logprobs[rows, self.answer]
        if self.kind is Metric.PROB:
            return logprobs[rows, self.answer].exp()
        assert self.clean_logprobs is not None
        ref = self.clean_logprobs
        return (ref.exp() * (ref - logprobs)).sum(-1)

    def repeat(self, times: int) -> MetricFn:
        """The same metric for a batch tiled ``times`` times (row ``i`` -> ``i % batch``)."""
        ref = None if self.clean_logprobs is None else self.clean_logprobs.repeat(times, 1)
        return MetricFn(self.kind, self.answer.repeat(times), self.corrupt_answer.repeat(times), ref)


def make_metric(
    kind: Metric | str,
    answer: Tensor,
    corrupt_answer: Tensor,
    clean_logits: Tensor | None = None,
) -> MetricFn:
    """Bind a metric to a batch; ``kl`` needs the clean run's last-position logits."""
    try:
        kind = Metric(kind)
    except ValueError:
        valid = ", ".join(m.value for m in Metric)
        raise InputError(f"unknown metric {kind!r}; valid metrics: {valid}") from None
    ref = None
    if kind is Metric.KL:
        if clean_logits is None:
            raise InputError("the kl metric needs the clean run's logits")
        ref = clean_logits.detach().float().log_softmax(-1)
    return MetricFn(kind, answer, corrupt_answer, ref)
