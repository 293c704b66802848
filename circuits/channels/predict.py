"""Channels: the writer components that carry a composition, and the predicted channel graph.

A channel is a writer (``a{l}.h{h}`` or ``m{l}``), a reader (a later head's
``<q>``, ``<k>`` or ``<v>`` input, named as in :mod:`circuits.graph`), the
composition type (the reader's letter), the writer's SVD components that
carry it and the rank needed to capture a stated share of it.

The share carried by component ``i`` of writer ``L`` into reader ``R`` is its
part of ``||L R||_F^2``: ``s_i^2 CS_i^2 / sum_j s_j^2 CS_j^2``, which the
identity in :mod:`circuits.channels.composition` makes exact. A channel's
strength is the z-score of its best component (Talking Heads' per-component
view); the whole-matrix z-score is kept alongside for comparison.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from circuits.channels.composition import ChannelAnalysis
from circuits.vocab import InputError

__all__ = ["Channel", "channel_graph", "find_channels", "rank_for_share"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channel:
    """One predicted writer -> reader channel.

    Attributes
    ----------
    writer, reader : str
        Sender and receiver names of the graph edge the channel runs along.
    kind : str
        ``"q"``, ``"k"`` or ``"v"`` composition.
    z : float
        Z-score of the best single component (the channel's strength).
    score : float
        That component's composition score ``CS(u_i v_i^T, R)``.
    whole, whole_z : float
        Whole-matrix composition score and its z-score.
    components : tuple of int
        Indices (in descending singular value order) of the components that
        together carry ``share`` of the composition, largest contribution first.
    rank : int
        ``len(components)``.
    share : float
        The share of ``||L R||_F^2`` they capture (at least the requested share
        when the writer's kept components allow it).
    """

    writer: str
    reader: str
    kind: str
    z: float
    score: float
    whole: float
    whole_z: float
    components: tuple[int, ...]
    rank: int
    share: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "components": list(self.components)}


def rank_for_share(analysis: ChannelAnalysis, w: int, r: int, share: float) -> tuple[tuple[int, ...], float]:
    """Smallest set of writer ``w``'s components carrying ``share`` of its composition into reader ``r``."""
    sigma = analysis.writers.sigma[w].double().numpy()
    total = float(analysis.writers.norm[w]) ** 2 * float(analysis.whole[w, r]) ** 2
    parts = sigma**2 * np.nan_to_num(analysis.component[w, r].astype(np.float64)) ** 2
    order = np.argsort(-parts, kind="stable")
    cumulative = np.cumsum(parts[order]) / max(total, 1e-30)
    k = int(np.searchsorted(cumulative, share - 1e-9)) + 1
    k = min(k, len(order))
    return tuple(int(i) for i in order[:k]), float(min(cumulative[k - 1], 1.0))


def find_channels(
    analysis: ChannelAnalysis,
    *,
    top: int | None = 20,
    share: float = 0.9,
    min_z: float | None = None,
    by: str = "component",
    writers: str = "all",
) -> list[Channel]:
    """The strongest channels, strongest first.

    Parameters
    ----------
    analysis : ChannelAnalysis
    top : int, optional
        Keep this many (all pairs above ``min_z`` when None).
    share : float
        Share of the composition the listed components must carry (0 < share <= 1).
    min_z : float, optional
        Keep only channels whose strength is at least this z-score.
    by : {"component", "whole"}
        Rank by the best component's z-score or by the whole-matrix z-score.
    writers : {"all", "heads", "mlps"}
        Which writers to consider.
    """
    if not 0.0 < share <= 1.0:
        raise InputError(f"share must lie in (0, 1], not {share}")
    if by not in ("component", "whole"):
        raise InputError(f"rank channels by 'component' or 'whole', not {by!r}")
    if writers not in ("all", "heads", "mlps"):
        raise InputError(f"writers must be 'all', 'heads' or 'mlps', not {writers!r}")
    if top is not None and top < 1:
        raise InputError(f"top must be at least 1, not {top}")
    comp_z = analysis.component_z
    best = np.nanmax(np.where(np.isnan(comp_z), -np.inf, comp_z), axis=-1)
    best_i = np.argmax(np.where(np.isnan(comp_z), -np.inf, comp_z), axis=-1)
    whole_z = analysis.whole_z
    key = best if by == "component" else whole_z
    key = np.where(np.isnan(analysis.whole), -np.inf, key)
    if writers != "all":
        keep = analysis.writers.is_mlp if writers == "mlps" else ~analysis.writers.is_mlp
        key = np.where(keep[:, None], key, -np.inf)
    if min_z is not None:
        key = np.where(key >= min_z, key, -np.inf)
    flat = np.argsort(-key, axis=None, kind="stable")
    n = int(np.isfinite(key).sum())
    flat = flat[: n if top is None else min(top, n)]
    out = []
    for w, r in zip(*np.unravel_index(flat, key.shape), strict=True):
        comps, captured = rank_for_share(analysis, w, r, share)
        out.append(
            Channel(
                writer=analysis.writers.names[w],
                reader=analysis.readers.names[r],
                kind=str(analysis.readers.kinds[r]),
                z=float(best[w, r]),
                score=float(analysis.component[w, r, best_i[w, r]]),
                whole=float(analysis.whole[w, r]),
                whole_z=float(whole_z[w, r]),
                components=comps,
                rank=len(comps),
                share=captured,
            )
        )
    return out


def channel_graph(channels: list[Channel]) -> Any:
    """A networkx DiGraph of predicted channels over the patching graph's node names.

    Edges run sender -> receiver (``a1.h2 -> a4.h0<q>``) with ``score``
    (= ``z``), ``weight`` (``|z|``), ``qkv``, ``rank``, ``components`` and
    ``predicted=True``; like :func:`circuits.graph.to_networkx`, a receiver
    input leads into its head by a structural edge (``internal=True``).

    >>> g = channel_graph([Channel("a0.h1", "a2.h0<q>", "q", 5.0, 0.3, 0.1, 2.0, (0,), 1, 0.95)])
    >>> sorted(g.edges())
    [('a0.h1', 'a2.h0<q>'), ('a2.h0<q>', 'a2.h0')]
    """
    import networkx as nx

    out = nx.DiGraph()
    for ch in channels:
        out.add_edge(
            ch.writer,
            ch.reader,
            score=ch.z,
            weight=abs(ch.z),
            qkv=ch.kind,
            rank=ch.rank,
            components=list(ch.components),
            whole_z=ch.whole_z,
            internal=False,
            predicted=True,
        )
        if ch.reader.endswith(">"):
            out.add_edge(ch.reader, ch.reader[:-3], internal=True, qkv=ch.kind)
    return out
