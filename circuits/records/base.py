"""The shape every analysis record shares: its provenance, written once, and the flat layout (torch-free).

A record is a dataclass whose first field is a :class:`Provenance` (which
model, relation, design and prompts, how many prompts, the bootstrap's seed
and resamples, the seconds it took, the analysis version and the package
version); its other fields are the analysis's own. ``to_dict()`` writes the
flat layout the gallery's files have always had (``analysis``, ``model``,
``relation``, ``template``, ``n_prompts``, ``seconds``, ``n_boot``, ``seed``,
``prompts`` at the top level, beside the analysis's own keys) plus
``analysis_version``, ``design`` and ``package_version``; ``from_dict()`` reads
it back. A record written before analyses had versions has no
``analysis_version`` and reads as version 0.

Settings are frozen dataclasses too: each field's ``metadata`` holds its
``help`` (and ``min``, ``range``, ``choices``, ``metavar``, ``flag`` where they
apply), from which the command line builds its options.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from circuits.uncertainty import DEFAULT_BOOT, Interval, format_stored
from circuits.version import __version__
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.relations.pairs import PairSet

__all__ = [
    "DESIGN",
    "AnalysisRecord",
    "AnalysisSettings",
    "Provenance",
    "interval",
    "intervals",
    "pairs_record",
    "read_map",
    "shown",
]

DESIGN = "subject-swap"
"""How the prompts' counterfactuals are made: another fact's subject, same relation (the only design)."""

R = TypeVar("R", bound="AnalysisRecord")


def interval(data: Any) -> Interval:
    """An :class:`Interval` from its stored ``{"value", "low", "high"}`` (a ``None`` bound is NaN).

    >>> interval({"value": 0.5, "low": None, "high": 0.75})
    Interval(value=0.5, low=nan, high=0.75)
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"an interval is an object with value, low and high, not {data!r}")
    return Interval(*(math.nan if data.get(k) is None else float(data[k]) for k in ("value", "low", "high")))


def shown(value: Interval | None) -> str:
    """An interval as ``value [low, high]`` (2 decimals), a bound that is NaN left out, none as ``n/a``.

    >>> shown(Interval(0.25, 0.2, 0.3)), shown(Interval(0.25, math.nan, math.nan)), shown(None)
    ('0.25 [0.20, 0.30]', '0.25', 'n/a')
    """
    return format_stored(None if value is None else value.as_dict())


def intervals(items: Any) -> list[Interval]:
    """A stored list of intervals."""
    return [interval(x) for x in items]


def pairs_record(pairs: PairSet) -> dict[str, Any]:
    """What a record keeps of the pair set its prompts came from: template, formats, counts, subjects."""
    return {
        "template": pairs.template,
        "prompt": pairs.prompt_record(),
        "n_facts": pairs.n_facts,
        "n_known": pairs.n_known,
        "subjects": [p.fact.subject for p in pairs.pairs],
    }


@dataclass(frozen=True)
class Provenance:
    """Where a record comes from, written once per record.

    ``prompts`` is the prompt record: the prompt choice (filter, cap, seed,
    templates, shots) and what the pairs were (template, formats, facts known,
    subjects); ``n_prompts`` the prompts the analysis used.
    """

    model: str
    relation: str
    template: str = ""
    design: str = DESIGN
    prompts: dict[str, Any] = field(default_factory=dict)
    n_prompts: int = 0
    seed: int = 0
    n_boot: int = DEFAULT_BOOT
    seconds: float = 0.0
    analysis_version: int = 0
    package_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "relation": self.relation,
            "template": self.template,
            "design": self.design,
            "n_prompts": self.n_prompts,
            "seconds": round(self.seconds, 3),
            "n_boot": self.n_boot,
            "seed": self.seed,
            "prompts": self.prompts,
            "analysis_version": self.analysis_version,
            "package_version": self.package_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Read the provenance keys of a flat record; the keys an older record lacks take their defaults."""
        prompts = data.get("prompts") or {}
        if not isinstance(prompts, dict):
            raise TypeError(f"'prompts' is {type(prompts).__name__}, not an object")
        return cls(
            model=str(data["model"]),
            relation=str(data["relation"]),
            template=str(data.get("template") or ""),
            design=str(data.get("design") or DESIGN),
            prompts=prompts,
            n_prompts=int(data.get("n_prompts") or 0),
            seed=int(data.get("seed") or 0),
            n_boot=int(data.get("n_boot", DEFAULT_BOOT)),
            seconds=float(data.get("seconds") or 0.0),
            analysis_version=int(data.get("analysis_version", 0)),
            package_version=str(data.get("package_version") or ""),
        )

    def heading(self) -> str:
        """``model / relation: n known-fact prompts (k of m facts known), formats``: a table's first line."""
        p = self.prompts
        formats = (p.get("prompt") or {}).get("formats") or [
            {"template": p.get("template", self.template), "shots": 0}
        ]
        shown = " + ".join(f"{f.get('shots')}-shot {f.get('template')!r}" for f in formats)
        known = f" ({p['n_known']} of {p['n_facts']} facts known)" if "n_known" in p else ""
        return f"{self.model} / {self.relation}: {self.n_prompts} known-fact prompts{known}, {shown}"

    def title(self, what: str) -> str:
        """``"<what>: <relation> (<model>, <n> prompts)"``, a figure's title."""
        return f"{what}: {self.relation or 'prompts'} ({self.model}, {self.n_prompts} prompts)"


@dataclass(frozen=True)
class AnalysisSettings:
    """What every analysis takes: bootstrap resamples (``--boot``, so not an option of its own)."""

    n_boot: int = field(default=DEFAULT_BOOT, metadata={"help": "bootstrap resamples", "cli": False})

    def heldout(self) -> float:
        """Share of each relation's pairs held out of the analysis (0: every pair is analysed)."""
        return 0.0

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON (a stage key's part)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class AnalysisRecord(ABC):
    """The base of every analysis record: its provenance, the flat layout, reading back and printing.

    A subclass sets ``NAME`` (its ``analysis`` key and file stem) and
    ``VERSION`` (raised whenever what it computes changes, so stored stages
    re-run), and defines :meth:`own_dict`, :meth:`read_own`,
    :meth:`description`, :meth:`summary_lines` and :meth:`finding`.
    """

    NAME: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    provenance: Provenance

    # ------------------------------------------------------------ to define
    @abstractmethod
    def own_dict(self) -> dict[str, Any]:
        """The analysis's own keys of the flat layout."""

    @classmethod
    @abstractmethod
    def read_own(cls: type[R], data: Mapping[str, Any], provenance: Provenance) -> R:
        """The record from its flat layout, the provenance read already."""

    def description(self) -> str:
        """One line: what the record's numbers are (a figure's caption ends with it)."""
        return ""

    def summary_lines(self, top: int | None = None) -> list[str]:
        """The table the command line prints (``top``: rows listed, where the analysis has a choice)."""
        return [self.provenance.heading()]

    def finding(self) -> str:
        """The one-line finding the main job's summary shows (``""`` when there is none)."""
        return ""

    # ------------------------------------------------------------ shared
    @classmethod
    def provenance_of(cls, model: str, relation: str, **fields: Any) -> Provenance:
        """A provenance stamped with this analysis's version."""
        return Provenance(model, relation, analysis_version=cls.VERSION, **fields)

    def with_prompts(self: R, before: Mapping[str, Any]) -> R:
        """The record with ``before`` (the prompt choice) in front of its prompt record."""
        prompts = {**before, **self.provenance.prompts}
        return dataclasses.replace(self, provenance=dataclasses.replace(self.provenance, prompts=prompts))

    def to_dict(self) -> dict[str, Any]:
        """The flat layout: ``analysis``, the provenance's keys and the analysis's own, strict JSON."""
        return {"analysis": self.NAME, **self.own_dict(), **self.provenance.to_dict()}

    @classmethod
    def from_dict(cls: type[R], data: Any, *, source: str = "") -> R:
        """Read a record written by :meth:`to_dict`, or by any earlier version of the analysis.

        Raises :class:`~circuits.vocab.InputError` (naming ``source``) when a
        field is missing or of the wrong type, or the record is another analysis's.
        """
        where = f"{source}: " if source else ""
        if not isinstance(data, Mapping):
            raise InputError(f"{where}an analysis record is a JSON object, not {type(data).__name__}")
        if data.get("analysis", cls.NAME) != cls.NAME:
            raise InputError(f"{where}a {data.get('analysis')!r} record, not a {cls.NAME!r} record")
        try:
            return cls.read_own(data, Provenance.from_dict(data))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise InputError(f"{where}not a readable {cls.NAME!r} record ({error!r})") from None


def read_map(data: Mapping[str, Any], read: Callable[[Any], Any]) -> dict[str, Any]:
    """A stored object of items, each read with ``read``."""
    return {str(k): read(v) for k, v in data.items()}
