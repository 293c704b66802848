"""Channels: the sender components that carry a composition, and the predicted channel graph.

A channel is a sender (``a{l}.h{h}`` or ``m{l}``), a receiver (a later head's
``<q>``, ``<k>`` or ``<v>`` input), named as in :mod:`circuits.graph`, the
composition type (the receiver's letter), the sender's SVD components that
carry it and the rank needed to capture a stated share of it.

The share carried by component ``i`` of sender ``L`` into receiver ``R`` is its
part of ``||L R||_F^2``: ``s_i^2 CS_i^2 / sum_j s_j^2 CS_j^2``, which the
identity in :mod:`circuits.channels.composition` makes exact. A channel's
strength is the z-score of its best component (Talking Heads' per-component
view); the whole-matrix z-score is kept alongside for comparison.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from circuits.channels.composition import ChannelAnalysis
from circuits.deprecation import OLD_CHANNEL_KEYS, old_attributes, renamed_keys, renamed_keyword
from circuits.vocab import InputError

__all__ = ["Channel", "channel_graph", "find_channels", "rank_for_share"]

log = logging.getLogger(__name__)


OLD_KEYS = OLD_CHANNEL_KEYS  # as 0.4 stored a channel (``channels.json``, the job's stage records)


@old_attributes(OLD_KEYS)
@dataclass(frozen=True)
class Channel:
    """One predicted sender -> receiver channel.

    Attributes
    ----------
    sender, receiver : str
        Names of the graph edge the channel runs along (in files of 0.4: ``writer``, ``reader``).
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
        when the sender's kept components allow it).
    """

    sender: str
    receiver: str
    kind: str
    z: float
    score: float
    whole: float
    whole_z: float
    components: tuple[int, ...]
    rank: int
    share: float

    def to_dict(self) -> dict[str, Any]:
        """The stored form (``channels.json``): the fields, ``components`` as a list."""
        return {**asdict(self), "components": list(self.components)}

    as_dict = to_dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Channel:
        """A channel from :meth:`to_dict`'s form, or as 0.4 stored it (``writer``, ``reader``).

        >>> old = {"writer": "a0.h1", "reader": "a2.h0<q>", "kind": "q", "z": 5.0, "score": 0.3,
        ...        "whole": 0.1, "whole_z": 2.0, "components": [0], "rank": 1, "share": 0.95}
        >>> Channel.from_dict(old).sender, Channel.from_dict(old).components
        ('a0.h1', (0,))
        """
        data = renamed_keys(data, OLD_KEYS)
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise InputError(f"a stored channel lacks {', '.join(missing)}")
        return cls(
            sender=str(data["sender"]),
            receiver=str(data["receiver"]),
            kind=str(data["kind"]),
            z=float(data["z"]),
            score=float(data["score"]),
            whole=float(data["whole"]),
            whole_z=float(data["whole_z"]),
            components=tuple(int(i) for i in data["components"]),
            rank=int(data["rank"]),
            share=float(data["share"]),
        )


def rank_for_share(analysis: ChannelAnalysis, w: int, r: int, share: float) -> tuple[tuple[int, ...], float]:
    """Smallest set of sender ``w``'s components carrying ``share`` of its composition into receiver ``r``."""
    sigma = analysis.senders.sigma[w].double().numpy()
    total = float(analysis.senders.norm[w]) ** 2 * float(analysis.whole[w, r]) ** 2
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
    senders: str = "all",
    writers: str | None = None,
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
    senders : {"all", "heads", "mlps"}
        Which senders to consider (``writers=``, its old name, still works for one version).
    """
    senders = renamed_keyword("writers", writers, "senders", senders, "all")
    if not 0.0 < share <= 1.0:
        raise InputError(f"share must lie in (0, 1], not {share}")
    if by not in ("component", "whole"):
        raise InputError(f"rank channels by 'component' or 'whole', not {by!r}")
    if senders not in ("all", "heads", "mlps"):
        raise InputError(f"senders must be 'all', 'heads' or 'mlps', not {senders!r}")
    if top is not None and top < 1:
        raise InputError(f"top must be at least 1, not {top}")
    comp_z = analysis.component_z
    best = np.nanmax(np.where(np.isnan(comp_z), -np.inf, comp_z), axis=-1)
    best_i = np.argmax(np.where(np.isnan(comp_z), -np.inf, comp_z), axis=-1)
    whole_z = analysis.whole_z
    key = best if by == "component" else whole_z
    key = np.where(np.isnan(analysis.whole), -np.inf, key)
    if senders != "all":
        keep = analysis.senders.is_mlp if senders == "mlps" else ~analysis.senders.is_mlp
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
                sender=analysis.senders.names[w],
                receiver=analysis.receivers.names[r],
                kind=str(analysis.receivers.kinds[r]),
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
            ch.sender,
            ch.receiver,
            score=ch.z,
            weight=abs(ch.z),
            qkv=ch.kind,
            rank=ch.rank,
            components=list(ch.components),
            whole_z=ch.whole_z,
            internal=False,
            predicted=True,
        )
        if ch.receiver.endswith(">"):
            out.add_edge(ch.receiver, ch.receiver[:-3], internal=True, qkv=ch.kind)
    return out
