"""The main job's stages: one method per stage of a relation, and the stages across relations.

A :class:`MainJob` holds what one run of the main job
(:func:`circuits.jobs.job.run_job`) shares between its stages: the model, the
settings, the gallery folder and the :class:`~circuits.jobs.stages.StageLog`.
Each method runs one stage (or reads it back) and returns its typed record
(:mod:`circuits.jobs.job_records`; the stage log stores the record's
``to_dict()``), which the job's summary
(:class:`~circuits.jobs.job_summary.JobSummary`) is made of.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from circuits.io import record_json
from circuits.jobs.analyses import run_analysis
from circuits.jobs.job_channels import channels_stage
from circuits.jobs.job_records import (
    AnalysisStage,
    ChannelsStage,
    CircuitStage,
    EvaluationStage,
    PositionsStage,
    ReuseStage,
    ScoreStage,
    StageRecord,
)
from circuits.jobs.job_settings import JobSettings, settings_dict, strongest_heads
from circuits.jobs.job_summary import PositionsRow, RelationRow
from circuits.jobs.mechanisms import PromptChoice
from circuits.jobs.stages import StageLog, StageRun
from circuits.models import LoadedModel
from circuits.records.stored import Estimate, read_stored, stored
from circuits.registry import ANALYSES
from circuits.relations import Relation
from circuits.relations.prompts import PromptFormat
from circuits.store import EVALUATION, SCORES, Gallery
from circuits.vocab import InputError

__all__ = ["MainJob"]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=StageRecord)


class MainJob:
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

    def stage(self, name: str, inputs: dict[str, Any], work: Callable[[], R], kind: type[R]) -> R:
        """Run ``work`` (or read its record back) as the stage ``name``; its record, of type ``kind``."""
        run = self.stages.run(name, {"model": self.model.name, **inputs}, lambda: work().to_dict())
        self.runs.append(run)
        log.info("%s: %s in %.1f s", name, "reused" if run.reused else "ran", run.seconds)
        source = str(self.stages.path(name))
        return read_stored(f"{name} stage record", run.result, kind.from_dict, source=source)

    # ------------------------------------------------------------ per relation
    def scored(self, arg: str, rel: Relation, digest: str) -> ScoreStage:
        from circuits.attribution.score import score_relation

        def work() -> ScoreStage:
            graph, pairs = score_relation(self.model, arg, self.score, progress=self.progress)
            folder = self.gallery.save_scored(graph, pairs.relation)
            return ScoreStage(
                n_facts=pairs.n_facts,
                n_known=pairs.n_known,
                n_scoring=len(pairs.scoring),
                n_heldout=len(pairs.heldout),
                prompt=pairs.prompt_record(),
                files=[self.rel(folder / SCORES)],
            )

        inputs = {"relation": digest, "score": settings_dict(self.score)}
        return self.stage(f"score/{rel.name}", inputs, work, ScoreStage)

    def circuit(self, rel: Relation, digest: str) -> CircuitStage:
        from circuits.jobs.extraction import extract_stored

        target, cap = self.settings.target_faithfulness, self.settings.max_edges

        def work() -> CircuitStage:
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
            return CircuitStage(
                summary=circuit.summary(),
                target=target,
                target_reached=reached,
                faithfulness_interval=Estimate.read(circuit.params.get("faithfulness_interval")),
                search_faithfulness=circuit.params.get("search_faithfulness"),
                heads=strongest_heads(circuit),
                files=[self.rel(where / "circuit.json")],
            )

        inputs = {
            "relation": digest,
            "score": settings_dict(self.score),
            "target": target,
            "max_edges": cap,
            "n_boot": self.settings.n_boot,
        }
        return self.stage(f"circuit/{rel.name}", inputs, work, CircuitStage)

    def evaluation(self, rel: Relation, digest: str, circuit: CircuitStage) -> EvaluationStage:
        from circuits.draw.evaluation_figures import faithfulness_figure
        from circuits.evaluate.heldout import evaluate_scored

        def work() -> EvaluationStage:
            folder = self.gallery.folder(self.model.name, rel.name, "scored")
            result, _ = evaluate_scored(
                folder, model=self.model, progress=self.progress, n_boot=self.settings.n_boot
            )
            record = result.as_dict()
            record["circuit"] = {
                "name": circuit.name,
                "n_edges": circuit.n_edges,
                "target": circuit.target,
                "target_reached": circuit.target_reached,
                "faithfulness": stored(circuit.faithfulness_interval),
            }
            files = {"evaluation.json": record_json(record), "evaluation.svg": faithfulness_figure(record)}
            where = self.gallery.save_files(
                self.model.name, EVALUATION, files, {"n_pairs": result.n_pairs}, relation=rel.name
            )
            iv = record["intervals"] or {}
            return EvaluationStage(
                cpr=Estimate.read(iv.get("cpr", result.cpr)),
                cmd=Estimate.read(iv.get("cmd", result.cmd)),
                n_pairs=result.n_pairs,
                clean_metric=result.clean_metric,
                files=[self.rel(where / "evaluation.json")],
            )

        inputs = {
            "relation": digest,
            "score": settings_dict(self.score),
            "n_boot": self.settings.n_boot,
            "circuit": circuit.name,
            "target_reached": circuit.target_reached,
        }
        return self.stage(f"evaluation/{rel.name}", inputs, work, EvaluationStage)

    def analysis(
        self, name: str, arg: str, rel: Relation, digest: str, prompt: dict[str, Any]
    ) -> AnalysisStage:
        """One registered analysis on the prompts the relation was scored with (``prompt``: its record)."""
        s = self.settings
        entry = ANALYSES[name]
        formats = [PromptFormat(f["template"], f["shots"]) for f in prompt.get("formats", [])]
        choice = PromptChoice(
            seed=s.seed,
            max_pairs=s.analysis_pairs,
            max_rank=s.max_rank,
            templates=tuple(formats) or s.templates,
            shots=None if formats else s.shots,
        )
        settings = entry.settings(n_boot=s.n_boot)

        def work() -> AnalysisStage:
            record, files = run_analysis(
                name, self.model, arg, choice, settings, store=self.gallery.root, progress=self.progress
            )
            return AnalysisStage(record.finding(), record.provenance.n_prompts, [self.rel(f) for f in files])

        inputs = {
            "relation": digest,
            "choice": choice.as_dict(),
            "n_boot": s.n_boot,
            "analysis": name,
            "version": entry.version,
            "settings": settings.as_dict(),
        }
        return self.stage(f"{name}/{rel.name}", inputs, work, AnalysisStage)

    def positions(self, arg: str, rel: Relation, digest: str) -> PositionsStage:
        from circuits.jobs.positions import run_positions

        s = self.settings

        def work() -> PositionsStage:
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
            c, summed = record["circuit"], record["summed_circuit"]  # the positions record (a plain dict)
            row = PositionsRow(
                circuit=str(c["name"]),
                n_units=int(c["n_units"]),
                n_edges=int(c["n_edges"]),
                role_counts={str(k): int(v) for k, v in c["role_counts"].items()},
                faithfulness=Estimate.read(c["faithfulness_interval"]),
                target_reached=bool(record["target_reached"]),
                summed_edges=int(summed["n_edges"]),
                summed_faithfulness=Estimate.read(summed["faithfulness_interval"]),
            )
            return PositionsStage(
                row, [self.rel(files["record"]), self.rel(files["circuit"] / "circuit.json")]
            )

        inputs = {
            "relation": digest,
            "score": settings_dict(self.score),
            "target": s.target_faithfulness,
            "max_units": s.max_edges,
            "n_boot": s.n_boot,
        }
        return self.stage(f"positions/{rel.name}", inputs, work, PositionsStage)

    # ------------------------------------------------------------ one relation, every stage
    def relation_row(self, arg: str, rel: Relation, digest: str, bar: Any = None) -> RelationRow:
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
            findings[name] = self.analysis(name, arg, rel, digest, scored.prompt or {}).finding
            advance()
        return RelationRow(
            relation=rel.name,
            n_facts=scored.n_facts,
            n_known=scored.n_known,
            n_scoring=scored.n_scoring,
            n_heldout=scored.n_heldout,
            prompt=scored.prompt,
            circuit=circuit.name,
            n_edges=circuit.n_edges,
            n_nodes=circuit.n_nodes,
            faithfulness=circuit.faithfulness_interval,
            target=circuit.target,
            target_reached=circuit.target_reached,
            search_faithfulness=circuit.search_faithfulness,
            heads=circuit.heads,
            cpr=evaluation.cpr,
            cmd=evaluation.cmd,
            findings=findings,
            positions=None if positions is None else positions.row,
        )

    # ------------------------------------------------------------ across relations
    def reuse(self, args: list[str], digests: dict[str, str]) -> ReuseStage:
        from circuits.jobs.reuse import run_reuse

        s = self.settings

        def work() -> ReuseStage:
            report = run_reuse(
                args,
                model=self.model,
                settings=self.score,
                size=s.reuse_size,
                store=self.gallery.root,
                noise=s.noise(),
                progress=self.progress,
            )
            return ReuseStage(
                relations=list(report.relations),
                skipped=dict(report.skipped),
                most_similar=report.most_similar,
                least_similar=report.least_similar,
                core=report.core,
                circuits={row.relation: row.name for row in report.circuits},
                files=[self.rel(Path(str(report.folder)) / "report.json")],
            )

        inputs = {
            "relations": digests,
            "score": settings_dict(self.score),
            "size": s.reuse_size,
            "noise": dataclasses.asdict(s.noise()),
        }
        return self.stage("reuse", inputs, work, ReuseStage)

    def channels(self, digests: dict[str, str], overlay: tuple[str, str]) -> ChannelsStage:
        s = self.settings

        def work() -> ChannelsStage:
            where, report = channels_stage(
                self.model, self.gallery, list(digests), overlay=overlay, top=s.channels_top, seed=s.seed
            )
            return ChannelsStage(
                list(report.validation), list(report.channels[:5]), [self.rel(where / "channels.json")]
            )

        inputs = {
            "relations": digests,
            "score": settings_dict(self.score),
            "top": s.channels_top,
            "overlay": list(overlay),
            "seed": s.seed,
        }
        return self.stage("channels", inputs, work, ChannelsStage)
