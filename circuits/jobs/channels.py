"""The channels job: SVD channels of a model, validated against patching graphs and causally checked."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from circuits.attribution.settings import ScoreSettings
from circuits.channels import (
    CausalResult,
    ChannelAnalysis,
    NullStats,
    ValidationRow,
    analyze,
    causal_check,
    find_channels,
    validate_relations,
)
from circuits.channels.predict import Channel
from circuits.channels.validate import SCOPES
from circuits.deprecation import OLD_CHANNELS_FILE_KEYS, renamed, renamed_keys
from circuits.jobs.dict_access import DictAccess
from circuits.models import LoadedModel
from circuits.relations.pairs import batch_pairs
from circuits.vocab import InputError

__all__ = ["ChannelsReport", "Overlay", "run_channels"]


@dataclass(frozen=True)
class Overlay:
    """Which stored circuit the main job drew the channels over, and what rendering said."""

    relation: str
    circuit: str
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"relation": self.relation, "circuit": self.circuit}
        return out if self.message is None else {**out, "message": self.message}


def _null_dict(null: NullStats) -> dict[str, Any]:
    return {
        "whole": {f"{s}-{r}": list(v) for (s, r), v in null.whole.items()},
        "component": {k: list(v) for k, v in null.component.items()},
    }


def _null_of(data: dict[str, Any], settings: dict[str, Any]) -> NullStats:
    whole = {tuple(str(k).split("-", 1)): (float(m), float(s)) for k, (m, s) in data["whole"].items()}
    component = {str(k): (float(m), float(s)) for k, (m, s) in data["component"].items()}
    return NullStats(whole, component, int(settings.get("n_null", 0)), int(settings.get("seed", 0)))  # type: ignore[arg-type]


@dataclass
class ChannelsReport(DictAccess):
    """What :func:`run_channels` found: its channels, validations and causal checks (``channels.json``).

    ``analysis`` is the :class:`~circuits.channels.ChannelAnalysis` the
    channels came from (``None`` for a report read back with
    :meth:`from_dict`); the rest is what ``channels.json`` stores:
    ``n_senders`` head and MLP outputs scored against ``n_receivers`` q/k/v
    inputs, the ``settings`` of the analysis, the ``share`` and ranking
    (``by``) of the listed channels and the random-matrix ``null``.
    """

    model: str
    channels: list[Channel]
    share: float
    by: str
    n_senders: int
    n_receivers: int
    settings: dict[str, Any]
    null: NullStats
    analysis_seconds: float = 0.0
    validation: list[ValidationRow] = field(default_factory=list)
    causal: dict[str, list[CausalResult]] = field(default_factory=dict)
    n_pairs: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    overlay: Overlay | None = None
    analysis: ChannelAnalysis | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(
        cls, analysis: ChannelAnalysis, channels: list[Channel], *, share: float, by: str
    ) -> ChannelsReport:
        """A report of ``channels`` found in ``analysis`` with ``share`` and ``by``."""
        return cls(
            model=analysis.model,
            channels=channels,
            share=share,
            by=by,
            n_senders=len(analysis.senders.names),
            n_receivers=len(analysis.receivers.names),
            settings=dict(analysis.settings),
            null=analysis.null,
            analysis_seconds=analysis.seconds,
            analysis=analysis,
        )

    def to_dict(self) -> dict[str, Any]:
        """The layout of ``channels.json`` (0.4 named ``n_senders`` and ``n_receivers`` otherwise)."""
        out = {
            "model": self.model,
            "analysis_seconds": round(self.analysis_seconds, 3),
            "n_senders": self.n_senders,
            "n_receivers": self.n_receivers,
            "settings": self.settings,
            "share": self.share,
            "by": self.by,
            "null": _null_dict(self.null),
            "channels": [c.to_dict() for c in self.channels],
            "validation": [row.to_dict() for row in self.validation],
            "causal": [
                {"relation": rel, "checks": [c.to_dict() for c in checks]}
                for rel, checks in self.causal.items()
            ],
            "seconds": round(self.seconds, 3),
        }
        return out if self.overlay is None else {**out, "overlay": self.overlay.to_dict()}

    def as_dict(self, *, share: float | None = None, by: str | None = None) -> dict[str, Any]:
        """Deprecated: :meth:`to_dict` (the report holds ``share`` and ``by`` itself now)."""
        renamed("ChannelsReport.as_dict(share=, by=)", "ChannelsReport.to_dict()", what="method")
        return {
            **self.to_dict(),
            **({} if share is None else {"share": share}),
            **({} if by is None else {"by": by}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChannelsReport:
        """A report from :meth:`to_dict`'s layout, or from a ``channels.json`` written by 0.4."""
        data = renamed_keys(data, OLD_CHANNELS_FILE_KEYS)
        settings = dict(data.get("settings") or {})
        overlay = data.get("overlay")
        return cls(
            model=str(data["model"]),
            channels=[Channel.from_dict(c) for c in data["channels"]],
            share=float(data["share"]),
            by=str(data["by"]),
            n_senders=int(data["n_senders"]),
            n_receivers=int(data["n_receivers"]),
            settings=settings,
            null=_null_of(data["null"], settings),
            analysis_seconds=float(data.get("analysis_seconds", 0.0)),
            validation=[ValidationRow.from_dict(v) for v in data.get("validation") or []],
            causal={
                str(c["relation"]): [CausalResult.from_dict(x) for x in c["checks"]]
                for c in data.get("causal") or []
            },
            seconds=float(data.get("seconds", 0.0)),
            overlay=None
            if overlay is None
            else Overlay(str(overlay["relation"]), str(overlay["circuit"]), overlay.get("message")),
        )


def run_channels(
    model: LoadedModel,
    *,
    top: int = 20,
    share: float = 0.9,
    by: str = "component",
    mlp: bool = True,
    validate: list[str] | None = None,
    max_pairs: int | None = None,
    top_fraction: float = 0.01,
    causal: int = 0,
    n_random: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> ChannelsReport:
    """Find the ``top`` channels; validate them on relations; causally check the ``causal`` strongest.

    Validation scores each relation by patching and reports how well the
    channels rank its important sender -> q/k/v edges (the top
    ``top_fraction``). The causal check removes each channel's subspace from
    its sender's output (for every receiver, then for the channel's receiver
    only) and compares with ``n_random`` random subspaces of the same rank.
    """
    if top < 1:
        raise InputError(f"--top must be at least 1, not {top}")
    if not 0.0 < share <= 1.0:
        raise InputError(f"--share must lie in (0, 1], not {share}")
    if max_pairs is not None and max_pairs < 2:
        raise InputError(f"--max-pairs must be at least 2, not {max_pairs}")
    if not 0.0 < top_fraction < 1.0:
        raise InputError(f"--top-fraction must lie in (0, 1), not {top_fraction}")
    if causal < 0:
        raise InputError(f"--causal must be 0 or more, not {causal}")
    if n_random < 1:
        raise InputError(f"--random must be at least 1, not {n_random}")
    if causal and not validate:
        raise InputError("--causal needs at least one --validate RELATION (its prompts are used)")
    started = time.perf_counter()
    analysis = analyze(model, mlp=mlp, seed=seed)
    report = ChannelsReport.of(
        analysis, find_channels(analysis, top=top, share=share, by=by), share=share, by=by
    )
    if validate:
        settings = ScoreSettings(max_pairs=max_pairs, seed=seed)
        validated = validate_relations(
            model, analysis, validate, settings=settings, top_fraction=top_fraction, progress=progress
        )
        report.validation = [row for row, _, _ in validated]
        if causal:
            strongest = find_channels(analysis, top=causal, share=share, by=by)
            for row, _, pairs in validated:
                batch = batch_pairs(pairs.pairs, pad=model.pad_id)
                report.n_pairs[row.relation] = len(batch)
                report.causal[row.relation] = [
                    causal_check(model, analysis, c, batch, seed=seed, scope=scope, n_random=n_random)
                    for c in strongest
                    for scope in SCOPES
                ]
    report.seconds = time.perf_counter() - started
    return report
