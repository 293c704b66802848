"""The main job: the whole mission on one model in resumable stages, every result in one gallery folder.

For each relation: score every edge (EAP-IG), extract the smallest circuit
reaching a target faithfulness on the scoring pairs, evaluate the graph and
the circuit on the held-out pairs (curves and intervals), and run the
mechanism analyses. Then compare the relations (the reuse sweep with noise
ceilings), check the weight channels against the patching graphs, and build
the HTML report. Each step is a stage (:mod:`circuits.jobs.job_stages`) of a
:class:`~circuits.jobs.stages.StageLog`:
re-running the job with the same model, relation contents, settings and
package version reads every stage back from disk; an analysis's stage is
keyed by its version as well (:data:`circuits.registry.ANALYSES`), so a new
version of one analysis runs that analysis again and nothing else. The
settings are :class:`~circuits.jobs.job_settings.JobSettings`, the summary it
returns a :class:`~circuits.jobs.job_summary.JobSummary`.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

from circuits.io import atomic_write_json
from circuits.jobs.executor import Executor, ModelSpec, portable_arg
from circuits.jobs.job_settings import DEFAULT_RELATIONS, JobSettings, relation_digest
from circuits.jobs.job_stages import MainJob
from circuits.jobs.job_summary import JobReuse, JobSummary, RelationRow, StageTiming
from circuits.jobs.reuse import skipped_text
from circuits.models import DEFAULT_MODEL, LoadedModel, load_model
from circuits.progress import progress_bar
from circuits.registry import ANALYSES
from circuits.relations.schema import load_relations
from circuits.vocab import NotEnoughFactsError

__all__ = ["ANALYSES", "DEFAULT_RELATIONS", "JobSettings", "JobSummary", "relation_task", "run_job"]

log = logging.getLogger(__name__)


def relation_task(arg: str, *, model: ModelSpec, settings: JobSettings, out: str) -> str | None:
    """One task of a distributed job: every per-relation stage of ``arg`` into ``out``.

    Returns why the relation was skipped, or None.
    """
    relation = load_relations([arg])[0][1]
    job = MainJob(model.load(), settings, Path(out), progress=False)
    try:
        job.relation_row(arg, relation, relation_digest(relation))
    except NotEnoughFactsError as error:
        return str(error)
    return None


def run_job(
    settings: JobSettings | None = None,
    out: str | Path = "runs/demo",
    *,
    model: str | LoadedModel = DEFAULT_MODEL,
    progress: bool = True,
    report: bool = True,
    executor: Executor | None = None,
) -> JobSummary:
    """Run the main job and return its summary (also written as ``<out>/<model>/job.json``).

    Parameters
    ----------
    settings : JobSettings, optional
        What to run (default ``JobSettings()``: four relations, 24 pairs each).
    out : str or Path
        The results folder, laid out like the ``graphs/`` gallery; a re-run
        into the same folder reuses every stage whose inputs are unchanged.
    model : str or LoadedModel
        A model name for :func:`~circuits.models.load_model`, or a loaded model.
    progress : bool
        A progress bar over the stages (and each long stage's own bar) on stderr.
    report : bool
        Build the HTML report (``<out>/report/index.html``) at the end.
    executor : Executor, optional
        Where the per-relation stages run: here, one relation after another
        (the default), or one Ray task per relation (``Executor("ray")``),
        each writing its stages into ``out``; the job then reads them back and
        runs the stages across relations here. The results are the same.

    Returns
    -------
    JobSummary
        ``model``, ``settings``, ``relations`` (one
        :class:`~circuits.jobs.job_summary.RelationRow` per relation: pairs,
        circuit, held-out faithfulness and CPR with intervals, the mechanism
        findings), ``skipped`` (relation -> why), ``reuse`` (the extreme pairs
        and the shared core), ``channels`` (validation rows), ``stages`` (name
        -> seconds and whether it was reused), ``report`` (the index page, or
        None) and ``seconds``; its ``to_dict()`` is ``job.json``.
    """
    started = time.perf_counter()
    settings = settings or JobSettings()
    args = [portable_arg(arg) for arg in settings.relations]
    relations = load_relations(args)
    loaded = load_model(model) if isinstance(model, str) else model
    job = MainJob(loaded, settings, Path(out), progress)
    digests = {rel.name: relation_digest(rel) for _, rel in relations}
    per_relation = 3 + len(settings.analyses) + settings.positions
    bar = progress_bar(per_relation * len(relations) + 2, "main job", enabled=progress)
    rows: list[RelationRow] = []
    skipped: dict[str, str] = {}
    if executor is not None and executor.distributed:
        task = functools.partial(
            relation_task, model=ModelSpec.of(loaded), settings=settings, out=str(job.gallery.root.resolve())
        )
        for arg, why in zip(
            args, executor.map(task, args, desc="main job: relations", progress=progress), strict=True
        ):
            if why is not None:
                log.warning("skipping %s: %s", arg, why)
                skipped[dict(relations)[arg].name] = why
    for arg, rel in relations:
        if rel.name in skipped:
            bar.update(per_relation)
            continue
        try:
            rows.append(job.relation_row(arg, rel, digests[rel.name], bar))
        except NotEnoughFactsError as error:
            log.warning("skipping %s: %s", rel.name, error)
            skipped[rel.name] = str(error)
            bar.update(per_relation)
    done = [(arg, rel) for arg, rel in relations if rel.name not in skipped]
    if len(done) < 2:
        bar.close()
        raise NotEnoughFactsError(f"fewer than 2 relations could be scored; {skipped_text(skipped)}")
    bar.set_description("main job: reuse")
    reuse = job.reuse([arg for arg, _ in done], {rel.name: digests[rel.name] for _, rel in done})
    bar.update(1)
    bar.set_description("main job: channels")
    first = done[0][1].name
    channels = job.channels({rel.name: digests[rel.name] for _, rel in done}, (first, reuse.circuits[first]))
    bar.update(1)
    bar.close()
    summary = JobSummary(
        model=loaded.name,
        settings=settings.as_dict(),
        relations=rows,
        skipped=skipped,
        reuse=JobReuse(reuse.most_similar, reuse.least_similar, reuse.core),
        channels=channels.validation,
        stages={r.name: StageTiming(r.seconds, r.reused) for r in job.runs},
        seconds=round(time.perf_counter() - started, 2),
    )
    atomic_write_json(job.home / "job.json", summary.to_dict(), indent=1)
    if report:
        from circuits.report import build_report

        summary.report = str(build_report(job.gallery.root))
        summary.seconds = round(time.perf_counter() - started, 2)
    return summary
