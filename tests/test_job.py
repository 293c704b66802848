"""The main job: every stage's files, resuming after an interruption, re-running only what changed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from circuits.cli.job import format_summary
from circuits.jobs.job_records import (
    AnalysisStage,
    ChannelsStage,
    CircuitStage,
    EvaluationStage,
    PositionsStage,
    ReuseStage,
    ScoreStage,
)
from circuits.jobs.job_summary import JobSummary
from circuits.jobs.stages import StageLog, stage_key
from circuits.relations import load_relation
from circuits.relations.schema import relation_to_json
from circuits.vocab import InputError

ALL = 10**9


def test_stage_log_reuses_only_a_finished_stage_with_the_same_key_and_files(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    log = StageLog(tmp_path / "model" / "stages")
    calls: list[str] = []

    def work() -> dict:
        calls.append("ran")
        (tmp_path / "model" / "out.txt").write_text("x")
        return {"value": len(calls), "files": ["out.txt"]}

    first = log.run("score/r", {"a": 1}, work)
    assert not first.reused and first.result["value"] == 1
    again = log.run("score/r", {"a": 1}, work)
    assert again.reused and again.result == first.result and len(calls) == 1
    # changed inputs, a lost output file, a damaged record: each runs the stage again
    assert not log.run("score/r", {"a": 2}, work).reused
    (tmp_path / "model" / "out.txt").unlink()
    assert not log.run("score/r", {"a": 2}, work).reused
    log.path("score/r").write_text("{")
    assert not log.run("score/r", {"a": 2}, work).reused
    assert len(calls) == 4
    # a stage that fails leaves no record, so the next run tries it again
    with pytest.raises(RuntimeError):
        log.run("other", {}, lambda: (_ for _ in ()).throw(RuntimeError("interrupted")))
    assert not log.path("other").exists()
    assert stage_key({"x": [1, 2]}) != stage_key({"x": [2, 1]})


_STAGES = {
    "score": ScoreStage,
    "circuit": CircuitStage,
    "evaluation": EvaluationStage,
    "positions": PositionsStage,
    "reuse": ReuseStage,
    "channels": ChannelsStage,
}


def _stage_records(home: Path) -> list[tuple[dict, object]]:
    """Every stage's stored result under ``home/stages``, and that result read into its stage's type."""
    out = []
    for path in sorted((home / "stages").glob("*.json")):
        result = json.loads(path.read_text())["result"]
        kind = _STAGES.get(json.loads(path.read_text())["stage"].split("/")[0], AnalysisStage)
        out.append((result, kind.from_dict(result)))
    assert out
    return out


def _settings(**changes):
    from circuits.jobs.job import JobSettings

    base = dict(
        relations=("country_capital_city", "country_currency"),
        max_pairs=8,
        ig_steps=2,
        analysis_pairs=6,
        analyses=("knockout", "dla"),
        n_boot=20,
        n_splits=4,
        n_perm=5,
        reuse_size=20,
        channels_top=3,
        max_rank=ALL,
    )
    return JobSettings(**{**base, **changes})


def test_job_settings_refuse_bad_values() -> None:
    with pytest.raises(InputError, match="unknown analyses"):
        _settings(analyses=("knockout", "tarot"))
    with pytest.raises(InputError, match="at least 2 relations"):
        _settings(relations=("country_currency",))
    with pytest.raises(InputError, match="target-faithfulness"):
        _settings(target_faithfulness=1.5)


def test_main_job_writes_every_stage_and_resumes(tiny_llama, tmp_path: Path, monkeypatch) -> None:
    from circuits.jobs.job import run_job
    from circuits.registry import ANALYSES

    out = tmp_path / "run"
    # an interruption in the second relation's dla stage: what finished before is kept
    real = ANALYSES["dla"]
    seen: list[str] = []

    def interrupted(model, pairs, settings, **kwargs):
        seen.append(pairs.relation.name)
        if pairs.relation.name == "country_currency":
            raise KeyboardInterrupt
        return real.runner()(model, pairs, settings, **kwargs)

    monkeypatch.setitem(ANALYSES, "dla", dataclasses.replace(real, run=interrupted))
    with pytest.raises(KeyboardInterrupt):
        run_job(_settings(), out, model=tiny_llama, progress=False, report=False)
    assert seen == ["country_capital_city", "country_currency"]
    stages = out / "tiny-llama" / "stages"
    done = sorted(p.stem for p in stages.glob("*.json"))
    assert "dla__country_capital_city" in done and "knockout__country_currency" in done
    assert "dla__country_currency" not in done and "reuse" not in done
    monkeypatch.setitem(ANALYSES, "dla", real)

    summary = run_job(_settings(), out, model=tiny_llama, progress=False, report=False)
    ran = {name for name, s in summary.stages.items() if not s.reused}
    assert ran == {"dla/country_currency", "reuse", "channels"}
    home = out / "tiny-llama"
    for rel in ("country_capital_city", "country_currency"):
        for path in (
            "scored/scores.safetensors",
            "evaluation/evaluation.json",
            "evaluation/evaluation.svg",
            "mechanisms/knockout.json",
            "mechanisms/dla.svg",
            "positions/positions.json",
            "positions/positions.svg",
        ):
            assert (home / rel / path).is_file(), (rel, path)
        evaluation = json.loads((home / rel / "evaluation" / "evaluation.json").read_text())
        row = summary.row(rel)
        assert evaluation["circuit"]["name"] == row.circuit
        assert row.faithfulness is not None
        assert evaluation["circuit"]["faithfulness"] == row.faithfulness.to_stored()
        assert (home / rel / row.circuit / "circuit.json").is_file()
        assert set(row.findings) == {"knockout", "dla"} and all(row.findings.values())
        positions = json.loads((home / rel / "positions" / "positions.json").read_text())
        stored = json.loads((home / rel / positions["circuit"]["folder"] / "circuit.json").read_text())
        assert row.positions is not None and stored["graph"]["positions"] == "roles"
        assert row.positions.n_units == positions["circuit"]["n_units"]
        assert row.positions.summed_edges == positions["summed_circuit"]["n_edges"]
        assert row.prompt is not None and row.n_scoring + row.n_heldout <= 8
    assert (home / "reuse" / "report.json").is_file() and (home / "reuse" / "noise.csv").is_file()
    channels = json.loads((home / "channels" / "channels.json").read_text())
    assert [r["relation"] for r in channels["validation"]] == ["country_capital_city", "country_currency"]
    assert channels["overlay"]["relation"] == "country_capital_city"
    # job.json is the summary's stored layout, and reads back into the same summary
    written = json.loads((home / "job.json").read_text())
    assert written == json.loads(json.dumps(summary.to_dict()))
    assert JobSummary.from_dict(written) == summary and summary.report is None and "report" not in written
    # every stage's record reads back into its type, to the same JSON
    for result, record in _stage_records(home):
        assert json.loads(json.dumps(record.to_dict())) == result

    # nothing changed: every stage is read back
    again = run_job(_settings(), out, model=tiny_llama, progress=False, report=False)
    assert again.stages_run == 0 and again.stages_reused == len(again.stages)
    assert again.relations == summary.relations

    # the content of one relation file changed: only its stages and the comparisons run again
    lre = relation_to_json(load_relation("country_currency"))
    lre["samples"] = lre["samples"][:-1]
    changed = tmp_path / "country_currency.json"
    changed.write_text(json.dumps(lre))
    third = run_job(
        _settings(relations=("country_capital_city", str(changed))),
        out,
        model=tiny_llama,
        progress=False,
        report=False,
    )
    ran = {name for name, s in third.stages.items() if not s.reused}
    assert ran == {
        "score/country_currency",
        "circuit/country_currency",
        "evaluation/country_currency",
        "positions/country_currency",
        "knockout/country_currency",
        "dla/country_currency",
        "reuse",
        "channels",
    }


def test_run_command_prints_the_summary(tiny_llama, tmp_path: Path, capsys) -> None:
    from circuits.cli import main

    argv = [
        "run",
        "country_capital_city",
        "country_currency",
        "--model",
        "tiny-llama",
        "--max-rank",
        str(ALL),
        "--max-pairs",
        "8",
        "--analysis-pairs",
        "6",
        "--analyses",
        "dla",
        "--boot",
        "10",
        "--splits",
        "2",
        "--permutations",
        "2",
        "--size",
        "20",
        "--out",
        str(tmp_path),
        "--quiet",
        "--no-report",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "main job on tiny-llama: 2 relations" in text
    assert "country_currency" in text and "held-out F" in text and "dla:" in text
    assert main([*argv[:-1], "--json"]) == 0  # the same run again, now with its report
    summary = json.loads(capsys.readouterr().out)
    assert summary["stages_run"] == 0
    index = Path(summary["report"])
    assert index == tmp_path / "report" / "index.html" and index.is_file()
    assert "country_currency" in (index.parent / "tiny-llama" / "country_currency.html").read_text()
    assert main(["run", "country_capital_city", "--out", str(tmp_path), "--quiet"]) == 2
    assert "at least 2 relations" in capsys.readouterr().err


def test_ctrl_c_is_reported_in_one_line(tiny_llama, tmp_path: Path, capsys, monkeypatch) -> None:
    from circuits.cli import main
    from circuits.jobs import job as job_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(job_module, "run_job", interrupted)
    assert (
        main(
            [
                "run",
                "country_capital_city",
                "country_currency",
                "--model",
                "tiny-llama",
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 130
    )
    assert "interrupted; nothing half-written was left; run it again to continue" in capsys.readouterr().err


def test_a_target_out_of_reach_keeps_the_capped_circuit_and_says_so(tiny_llama, tmp_path: Path) -> None:
    from circuits.jobs.job import run_job

    summary = run_job(
        _settings(analyses=(), target_faithfulness=1.0, max_edges=1, n_perm=2, n_splits=2),
        tmp_path,
        model=tiny_llama,
        progress=False,
        report=False,
    )
    for row in summary.relations:
        assert row.n_edges <= 1
        if not row.target_reached:
            assert row.circuit.startswith("top-n")
            evaluation = json.loads(
                (tmp_path / "tiny-llama" / row.relation / "evaluation" / "evaluation.json").read_text()
            )
            assert evaluation["circuit"]["target_reached"] is False
    assert not all(row.target_reached for row in summary.relations)
    text = format_summary(summary)
    assert "* no circuit of at most 1 edges reached the target: the top 1 edges" in text
