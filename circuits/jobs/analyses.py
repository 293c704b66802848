"""The one job of every registered analysis: a relation's known-fact prompts -> the analysis -> its files.

:func:`run_analysis` looks the analysis up in :data:`circuits.registry.ANALYSES`,
makes the relation's known-fact pairs under a
:class:`~circuits.jobs.mechanisms.PromptChoice` (an analysis across relations,
such as suppression, gets one pair set per relation, split by its held-out
fraction), runs the analysis's ``run``, puts the prompt choice in front of the
record's prompt record and writes ``<name>.json`` and ``<name>.svg``: to
``out``, and to the gallery ``store`` (``<model>/<relation>/mechanisms/``, or
``<model>/<name>/`` for an analysis across relations).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from circuits.io import atomic_write_text, record_json
from circuits.jobs.mechanisms import PromptChoice, choice_pairs, write_files
from circuits.records.base import AnalysisRecord, AnalysisSettings
from circuits.registry import Analysis, analysis
from circuits.relations.schema import Relation
from circuits.store.gallery import Gallery
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["run_analysis"]

RelationArg = str | Path | Relation


def run_analysis(
    name: str,
    model: LoadedModel,
    relation: RelationArg | Sequence[RelationArg],
    choice: PromptChoice | None = None,
    settings: AnalysisSettings | None = None,
    *,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[AnalysisRecord, list[Path]]:
    """Run the registered analysis ``name`` on a relation (or several); return its record and files.

    Parameters
    ----------
    name : str
        A name of :data:`~circuits.registry.ANALYSES`.
    model : LoadedModel
    relation : str, Path or Relation, or a sequence of them
        A bundled relation name, an LRE file or a CSV (a sequence for an
        analysis across relations).
    choice : PromptChoice, optional
        Which prompts (default: the known facts in the seeded order, the best templates).
    settings : optional
        The analysis's settings (default: its defaults).
    out, store : Path, optional
        A folder for ``<name>.json`` and ``<name>.svg``, and a gallery root.
    progress : bool
        Progress bars.

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> record, files = run_analysis("knockout", model, "country_capital_city",
    ...     PromptChoice(max_pairs=6, max_rank=10**9), progress=False)
    >>> record.NAME, record.provenance.prompts["max_pairs"], len(record.provenance.prompts["subjects"]), files
    ('knockout', 6, 6, [])
    """
    entry = analysis(name)
    choice = choice or PromptChoice()
    settings = settings if settings is not None else entry.settings()
    if not isinstance(settings, entry.settings):
        raise InputError(f"{name} takes {entry.settings.__name__}, not {type(settings).__name__}")
    run = entry.runner()
    if entry.scope == "relations":
        many = [relation] if isinstance(relation, str | Path | Relation) else list(relation)
        pairs = [choice_pairs(model, r, choice, heldout_fraction=settings.heldout()) for r in many]
        record = run(model, pairs, settings, seed=choice.seed, progress=progress)
    else:
        if not isinstance(relation, str | Path | Relation):
            raise InputError(f"{name} analyses one relation at a time, not {len(relation)}")
        one = choice_pairs(model, relation, choice, heldout_fraction=settings.heldout())
        record = run(model, one, settings, seed=choice.seed, progress=progress)
    record = record.with_prompts(choice.as_dict())
    return record, _write(entry, record, out, store)


def _write(entry: Analysis, record: AnalysisRecord, out: Path | None, store: Path | None) -> list[Path]:
    if out is None and store is None:
        return []
    text, svg = record_json(record.to_dict()), entry.draw(record)
    where = record.provenance
    if entry.scope == "relation":
        return write_files(out, store, entry.name, text, svg, model=where.model, relation=where.relation)
    files = {f"{entry.name}.json": text, f"{entry.name}.svg": svg}
    written: list[Path] = []
    if out is not None:
        for file, content in files.items():
            atomic_write_text(Path(out) / file, content)
            written.append(Path(out) / file)
    if store is not None:
        relations = getattr(record, "relations", [where.relation])
        folder = Gallery(store).save_files(where.model, entry.name, files, {"relations": relations})
        written += [folder / file for file in files]
    return written
