"""The main job: the whole mission on one model in resumable stages, every result in one gallery folder.

For each relation: score every edge (EAP-IG), extract the smallest circuit
reaching a target faithfulness on the scoring pairs, evaluate the graph and
the circuit on the held-out pairs (curves and intervals), and run the
mechanism analyses. Then compare the relations (the reuse sweep with noise
ceilings), check the weight channels against the patching graphs, and build
the HTML report. Each step is a stage of a :class:`~circuits.jobs.stages.StageLog`:
re-running the job with the same model, relation contents, settings and
package version reads every stage back from disk.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from circuits.attribution.settings import ScoreSettings
from circuits.compare.ceilings import NoiseSettings
from circuits.io import atomic_write_json, record_json
from circuits.jobs.additive import run_dla, run_motif
from circuits.jobs.executor import Executor, ModelSpec, portable_arg
from circuits.jobs.findings import finding
from circuits.jobs.job_channels import channels_stage
from circuits.jobs.mechanisms import PromptChoice, run_enrichment, run_extraction, run_knockout
from circuits.jobs.mlp import run_mlp
from circuits.jobs.reuse import skipped_text
from circuits.jobs.stages import StageLog, StageRun
from circuits.models import DEFAULT_MODEL, LoadedModel, load_model
from circuits.progress import progress_bar
from circuits.relations import Relation
from circuits.relations.prompts import PromptFormat
from circuits.relations.schema import load_relations, relation_to_json
from circuits.store import EVALUATION, SCORES, Gallery
from circuits.store.gallery import IMPLIED
from circuits.uncertainty import DEFAULT_BOOT
from circuits.vocab import InputError, NotEnoughFactsError

__all__ = ["ANALYSES", "DEFAULT_RELATIONS", "JobSettings", "relation_task", "run_job"]

log = logging.getLogger(__name__)

DEFAULT_RELATIONS = ("country_capital_city", "country_language", "country_currency", "city_in_country")
"""Four relations: two that share a subject type with different attributes, two about cities and countries."""

ANALYSES: dict[str, Callable[..., Any]] = {
    "knockout": run_knockout,
    "enrichment": run_enrichment,
    "extraction": run_extraction,
    "dla": run_dla,
    "motif": run_motif,
    "mlp": run_mlp,
}
"""The mechanism analyses the job runs for every relation, by name."""


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """What the main job runs; every field is part of the stages' keys.

    Parameters
    ----------
    relations : tuple of str
        Bundled relation names or relation files (at least two for reuse).
    max_pairs : int
        Prompt pairs per relation before the scoring / held-out split.
    ig_steps : int
        EAP-IG integration steps.
    target_faithfulness : float
        The circuit of each relation is the smallest top-n circuit whose
        faithfulness on the scoring pairs reaches this.
    max_edges : int
        ... of at most this many edges (a diagram stays readable); when none
        reaches the target, the top ``max_edges`` edges, marked
        ``target_reached: false``.
    reuse_size : int
        Edges of the equal-size circuits the reuse sweep compares.
    analyses : tuple of str
        Mechanism analyses to run (names of :data:`ANALYSES`).
    analysis_pairs : int
        Known-fact prompts each mechanism analysis uses.
    n_boot, n_splits, n_perm : int
        Bootstrap resamples (every interval), split-half splits (noise
        ceilings) and permutation shuffles (nulls).
    channels_top : int
        How many weight channels are predicted and drawn.
    positions : bool
        Also score each relation by position role and extract its
        position-aware circuit (same target, at most ``max_edges`` units),
        set against summed circuits of equal size
        (:func:`~circuits.jobs.positions.run_positions`).
    seed : int
        Seeds every split, resample and shuffle.
    max_rank : int
        A fact is known, and used, when the model ranks its answer at most
        this (1: top-1; a huge value keeps every fact, e.g. for a random model).
    templates, shots
        Which templates make each relation's prompts, and how many
        demonstrations precede them (:class:`~circuits.attribution.ScoreSettings`);
        the mechanism analyses use the prompts scoring chose.
    """

    relations: tuple[str, ...] = DEFAULT_RELATIONS
    max_pairs: int = 24
    ig_steps: int = 5
    target_faithfulness: float = 0.8
    max_edges: int = 1000
    reuse_size: int = 150
    analyses: tuple[str, ...] = tuple(ANALYSES)
    analysis_pairs: int = 16
    n_boot: int = DEFAULT_BOOT
    n_splits: int = 20
    n_perm: int = 50
    channels_top: int = 10
    positions: bool = True
    seed: int = 0
    max_rank: int = 1
    templates: str | int = "best"
    shots: int | None = None

    def __post_init__(self) -> None:
        unknown = [a for a in self.analyses if a not in ANALYSES]
        if unknown:
            raise InputError(f"unknown analyses {unknown}; valid: {', '.join(ANALYSES)}")
        if len(self.relations) < 2:
            raise InputError(f"the main job compares at least 2 relations, got {len(self.relations)}")
        if not 0.0 < self.target_faithfulness <= 1.0:
            raise InputError(f"--target-faithfulness must lie in (0, 1], not {self.target_faithfulness}")
        for name in ("max_pairs", "analysis_pairs"):
            if getattr(self, name) < 4:
                raise InputError(f"{name.replace('_', '-')} must be at least 4, not {getattr(self, name)}")
        if self.reuse_size < 1 or self.channels_top < 1 or self.max_edges < 1:
            raise InputError("reuse_size, max_edges and channels_top must be at least 1")

    def score_settings(self) -> ScoreSettings:
        return ScoreSettings(
            ig_steps=self.ig_steps,
            max_pairs=self.max_pairs,
            seed=self.seed,
            max_rank=self.max_rank,
            templates=self.templates,
            shots=self.shots,
        )

    def noise(self) -> NoiseSettings:
        return NoiseSettings(n_boot=self.n_boot, n_splits=self.n_splits, n_perm=self.n_perm, seed=self.seed)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def relation_digest(relation: Relation) -> str:
    """SHA-256 of a relation's content (templates and facts), whatever file it came from."""
    text = json.dumps(relation_to_json(relation), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def strongest_heads(circuit: Any, k: int = 12) -> list[str]:
    """The ``k`` heads whose outgoing circuit edges carry the largest total ``|score|``, strongest first."""
    strength: dict[str, float] = {}
    for (sender, _), score in circuit.edges.items():
        if sender.startswith("a"):
            strength[sender] = strength.get(sender, 0.0) + abs(score)
    return sorted(strength, key=lambda h: (-strength[h], h))[:k]


def _settings_dict(settings: ScoreSettings) -> dict[str, Any]:
    """The settings as plain JSON for a stage key; a setting added later is left out at its implied default,
    so adding it does not invalidate stages finished before it existed."""
    plain = json.loads(
        json.dumps(dataclasses.asdict(settings), default=lambda v: getattr(v, "value", str(v)))
    )
    return {k: v for k, v in plain.items() if IMPLIED.get(k, object()) != v}


class _Job:
    """The state one run of the job shares between its stages."""

    def __init__(self, loaded: LoadedModel, settings: JobSettings, out: Path, progress: bool) -> None:
        self.model, self.settings, self.progress = loaded, settings, progress
        self.gallery = Gallery(out)
        self.home = self.gallery.folder(loaded.name)
        self.stages = StageLog(self.home / "stages")
        self.runs: list[StageRun] = []
        self.score = settings.score_settings()

    def rel(self, path: Path) -> str:
        return path.relative_to(self.home).as_posix()

    def stage(self, name: str, inputs: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        run = self.stages.run(name, {"model": self.model.name, **inputs}, work)
        self.runs.append(run)
        log.info("%s: %s in %.1f s", name, "reused" if run.reused else "ran", run.seconds)
        return run.result

    # ------------------------------------------------------------ per relation
    def scored(self, arg: str, rel: Relation, digest: str) -> dict[str, Any]:
        from circuits.attribution.score import score_relation

        def work() -> dict[str, Any]:
            graph, pairs = score_relation(self.model, arg, self.score, progress=self.progress)
            folder = self.gallery.save_scored(graph, pairs.relation)
            return {
                "files": [self.rel(folder / SCORES)],
                "n_facts": pairs.n_facts,
                "n_known": pairs.n_known,
                "n_scoring": len(pairs.scoring),
                "n_heldout": len(pairs.heldout),
                "prompt": pairs.prompt_record(),
            }

        return self.stage(
            f"score/{rel.name}", {"relation": digest, "score": _settings_dict(self.score)}, work
        )

    def circuit(self, rel: Relation, digest: str) -> dict[str, Any]:
        from circuits.jobs.extraction import extract_stored

        target, cap = self.settings.target_faithfulness, self.settings.max_edges

        def work() -> dict[str, Any]:
            folder = self.gallery.folder(self.model.name, rel.name, "scored")
            common = {
                "evaluate": True,
                "store": self.gallery.root,
                "n_boot": self.settings.n_boot,
                "model": self.model,
            }
            reached = True
            try:
                circuit, where, _ = extract_stored(folder, target_faithfulness=target, size=cap, **common)
            except InputError as error:  # not within the cap: the top `cap` edges, marked short of the target
                log.warning("%s: %s; keeping the top %d edges", rel.name, error, cap)
                circuit, where, _ = extract_stored(folder, size=cap, **common)
                reached = False
            return {
                **circuit.summary(),
                "target": target,
                "target_reached": reached,
                "faithfulness_interval": circuit.params.get("faithfulness_interval"),
                "search_faithfulness": circuit.params.get("search_faithfulness"),
                "heads": strongest_heads(circuit),
                "files": [self.rel(where / "circuit.json")],
            }

        inputs = {
            "relation": digest,
            "score": _settings_dict(self.score),
            "target": target,
            "max_edges": cap,
            "n_boot": self.settings.n_boot,
        }
        return self.stage(f"circuit/{rel.name}", inputs, work)

    def evaluation(self, rel: Relation, digest: str, circuit: dict[str, Any]) -> dict[str, Any]:
        from circuits.draw.evaluation_figures import faithfulness_figure
        from circuits.evaluate.heldout import evaluate_scored

        def work() -> dict[str, Any]:
            folder = self.gallery.folder(self.model.name, rel.name, "scored")
            result, _ = evaluate_scored(
                folder, model=self.model, progress=self.progress, n_boot=self.settings.n_boot
            )
            record = result.as_dict()
            record["circuit"] = {
                "name": circuit["name"],
                "n_edges": circuit["n_edges"],
                "target": circuit["target"],
                "target_reached": circuit["target_reached"],
                "faithfulness": circuit["faithfulness_interval"],
            }
            files = {"evaluation.json": record_json(record), "evaluation.svg": faithfulness_figure(record)}
            where = self.gallery.save_files(
                self.model.name, EVALUATION, files, {"n_pairs": result.n_pairs}, relation=rel.name
            )
            iv = record["intervals"] or {}
            return {
                "cpr": iv.get("cpr", result.cpr),
                "cmd": iv.get("cmd", result.cmd),
                "n_pairs": result.n_pairs,
                "clean_metric": result.clean_metric,
                "files": [self.rel(where / "evaluation.json")],
            }

        inputs = {
            "relation": digest,
            "score": _settings_dict(self.score),
            "n_boot": self.settings.n_boot,
            "circuit": circuit["name"],
            "target_reached": circuit["target_reached"],
        }
        return self.stage(f"evaluation/{rel.name}", inputs, work)

    def analysis(
        self, name: str, arg: str, rel: Relation, digest: str, prompt: dict[str, Any]
    ) -> dict[str, Any]:
        """One mechanism analysis on the prompts the relation was scored with (``prompt``: its record)."""
        s = self.settings
        formats = [PromptFormat(f["template"], f["shots"]) for f in prompt.get("formats", [])]
        choice = PromptChoice(
            seed=s.seed,
            max_pairs=s.analysis_pairs,
            max_rank=s.max_rank,
            templates=tuple(formats) or s.templates,
            shots=None if formats else s.shots,
        )

        def work() -> dict[str, Any]:
            _, record, files = ANALYSES[name](
                self.model, arg, choice, n_boot=s.n_boot, store=self.gallery.root, progress=self.progress
            )
            return {
                "finding": finding(name, record),
                "n_prompts": record.get("n_prompts"),
                "files": [self.rel(f) for f in files],
            }

        inputs = {"relation": digest, "choice": choice.as_dict(), "n_boot": s.n_boot, "analysis": name}
        return self.stage(f"{name}/{rel.name}", inputs, work)

    def positions(self, arg: str, rel: Relation, digest: str) -> dict[str, Any]:
        from circuits.jobs.positions import run_positions

        s = self.settings

        def work() -> dict[str, Any]:
            record, _, files = run_positions(
                self.model,
                arg,
                self.score,
                target=s.target_faithfulness,
                max_units=s.max_edges,
                n_boot=s.n_boot,
                store=self.gallery.root,
                progress=self.progress,
            )
            c, summed = record["circuit"], record["summed_circuit"]
            return {
                "circuit": c["name"],
                "n_units": c["n_units"],
                "n_edges": c["n_edges"],
                "role_counts": c["role_counts"],
                "faithfulness": c["faithfulness_interval"],
                "target_reached": record["target_reached"],
                "summed_edges": summed["n_edges"],
                "summed_faithfulness": summed["faithfulness_interval"],
                "files": [self.rel(files["record"]), self.rel(files["circuit"] / "circuit.json")],
            }

        inputs = {
            "relation": digest,
            "score": _settings_dict(self.score),
            "target": s.target_faithfulness,
            "max_units": s.max_edges,
            "n_boot": s.n_boot,
        }
        return self.stage(f"positions/{rel.name}", inputs, work)

    # ------------------------------------------------------------ one relation, every stage
    def relation_row(self, arg: str, rel: Relation, digest: str, bar: Any = None) -> dict[str, Any]:
        """Every per-relation stage of ``rel`` (each read back when finished before); its summary row.

        Raises :class:`~circuits.vocab.NotEnoughFactsError` when the relation cannot be scored.
        """
        settings = self.settings

        def step(what: str) -> None:
            if bar is not None:
                bar.set_description(f"main job: {rel.name} {what}".rstrip())

        def advance() -> None:
            if bar is not None:
                bar.update(1)

        step("")
        scored = self.scored(arg, rel, digest)
        advance()
        circuit = self.circuit(rel, digest)
        advance()
        evaluation = self.evaluation(rel, digest, circuit)
        advance()
        positions = None
        if settings.positions:
            step("positions")
            positions = self.positions(arg, rel, digest)
            advance()
        findings = {}
        for name in settings.analyses:
            step(name)
            findings[name] = self.analysis(name, arg, rel, digest, scored.get("prompt", {}))["finding"]
            advance()
        return {
            "relation": rel.name,
            **{k: scored[k] for k in ("n_facts", "n_known", "n_scoring", "n_heldout")},
            "prompt": scored.get("prompt"),
            "circuit": circuit["name"],
            "n_edges": circuit["n_edges"],
            "n_nodes": circuit["n_nodes"],
            "faithfulness": circuit["faithfulness_interval"],
            "target": circuit["target"],
            "target_reached": circuit["target_reached"],
            "search_faithfulness": circuit["search_faithfulness"],
            "heads": circuit["heads"],
            "cpr": evaluation["cpr"],
            "cmd": evaluation["cmd"],
            "findings": findings,
            "positions": positions and {k: v for k, v in positions.items() if k != "files"},
        }

    # ------------------------------------------------------------ across relations
    def reuse(self, args: list[str], digests: dict[str, str]) -> dict[str, Any]:
        from circuits.jobs.reuse import run_reuse

        s = self.settings

        def work() -> dict[str, Any]:
            report = run_reuse(
                args,
                model=self.model,
                settings=self.score,
                size=s.reuse_size,
                store=self.gallery.root,
                noise=s.noise(),
                progress=self.progress,
            )
            return {
                "relations": report["relations"],
                "skipped": report["skipped"],
                "most_similar": report["most_similar"],
                "least_similar": report["least_similar"],
                "core": report["core"],
                "circuits": {r["relation"]: r["name"] for r in report["circuits"]},
                "files": [self.rel(Path(report["folder"]) / "report.json")],
            }

        inputs = {
            "relations": digests,
            "score": _settings_dict(self.score),
            "size": s.reuse_size,
            "noise": dataclasses.asdict(s.noise()),
        }
        return self.stage("reuse", inputs, work)

    def channels(self, digests: dict[str, str], overlay: tuple[str, str]) -> dict[str, Any]:
        s = self.settings

        def work() -> dict[str, Any]:
            where, data = channels_stage(
                self.model, self.gallery, list(digests), overlay=overlay, top=s.channels_top, seed=s.seed
            )
            return {
                "validation": data["validation"],
                "channels": data["channels"][:5],
                "files": [self.rel(where / "channels.json")],
            }

        inputs = {
            "relations": digests,
            "score": _settings_dict(self.score),
            "top": s.channels_top,
            "overlay": list(overlay),
            "seed": s.seed,
        }
        return self.stage("channels", inputs, work)


def relation_task(arg: str, *, model: ModelSpec, settings: JobSettings, out: str) -> str | None:
    """One task of a distributed job: every per-relation stage of ``arg`` into ``out``; why it was skipped, or None."""
    relation = load_relations([arg])[0][1]
    job = _Job(model.load(), settings, Path(out), progress=False)
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
) -> dict[str, Any]:
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
    dict
        ``model``, ``settings``, ``relations`` (one row per relation: pairs,
        circuit, held-out faithfulness and CPR with intervals, the mechanism
        findings), ``skipped`` (relation -> why), ``reuse``, ``channels``,
        ``stages`` (name -> seconds and whether it was reused), ``report``
        (the index page, or None) and ``seconds``.
    """
    started = time.perf_counter()
    settings = settings or JobSettings()
    args = [portable_arg(arg) for arg in settings.relations]
    relations = load_relations(args)
    loaded = load_model(model) if isinstance(model, str) else model
    job = _Job(loaded, settings, Path(out), progress)
    digests = {rel.name: relation_digest(rel) for _, rel in relations}
    per_relation = 3 + len(settings.analyses) + settings.positions
    bar = progress_bar(per_relation * len(relations) + 2, "main job", enabled=progress)
    rows: list[dict[str, Any]] = []
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
    channels = job.channels(
        {rel.name: digests[rel.name] for _, rel in done}, (first, reuse["circuits"][first])
    )
    bar.update(1)
    bar.close()
    summary: dict[str, Any] = {
        "model": loaded.name,
        "settings": settings.as_dict(),
        "relations": rows,
        "skipped": skipped,
        "reuse": {k: reuse[k] for k in ("most_similar", "least_similar", "core")},
        "channels": channels["validation"],
        "stages": {r.name: {"seconds": r.seconds, "reused": r.reused} for r in job.runs},
        "stages_run": sum(not r.reused for r in job.runs),
        "stages_reused": sum(r.reused for r in job.runs),
    }
    summary["seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_json(job.home / "job.json", summary, indent=1)
    summary["report"] = None
    if report:
        from circuits.report import build_report

        summary["report"] = str(build_report(job.gallery.root))
        summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary
