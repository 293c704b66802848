"""The jobs' typed records read the committed gallery's files back to the same JSON, and print as before.

``job.json`` (:class:`JobSummary`), the stage records under ``stages/``, the
reuse report's noise references, and the records of ``compare-models``,
``intervene`` and ``compare``: each ``from_dict(to_dict(x)) == x`` and
``to_dict(from_dict(stored))`` is the stored JSON.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from circuits.cli.graphs import noise_table
from circuits.cli.job import format_comparison, format_summary
from circuits.compare.ceilings import NoiseSettings
from circuits.compare.model_record import (
    KnockoutPeak,
    ModelCircuit,
    ModelComparison,
    RelationComparison,
    ReuseAgreement,
)
from circuits.jobs.compare_record import CircuitComparison, UnitCounts
from circuits.jobs.intervene_record import InterventionPrompts, InterventionRecord
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
from circuits.jobs.noise_record import CompareNoise, SimilarityRow
from circuits.jobs.reuse_report import ReuseReport
from circuits.records.stored import Estimate
from circuits.vocab import InputError

ROOT = Path(__file__).resolve().parents[1] / "graphs"
JOBS = sorted(ROOT.glob("*/job.json"))
STAGES = {
    "score": ScoreStage,
    "circuit": CircuitStage,
    "evaluation": EvaluationStage,
    "positions": PositionsStage,
    "reuse": ReuseStage,
    "channels": ChannelsStage,
}


def _text(data: dict) -> str:
    return json.dumps(data, indent=1)


# ------------------------------------------------------------------ estimates


@pytest.mark.parametrize(
    "stored",
    [
        {"value": 0.729211, "low": 0.607366, "high": 0.816677, "n_boot": 200, "n_pairs": 10},
        {"value": 1.026464, "low": 0.965547, "high": 1.073553},
        {"value": 0.5, "low": None, "high": None},
        0.8026246074911313,
        None,
    ],
)
def test_an_estimate_keeps_its_stored_form(stored):
    e = Estimate.read(stored)
    assert (None if e is None else e.to_stored()) == stored
    assert e is None or Estimate.read(e.to_stored()) == e


def test_an_estimate_prints_as_a_stored_interval():
    assert Estimate.read({"value": 0.912, "low": 0.861, "high": 0.954}).shown() == "0.91 [0.86, 0.95]"
    assert Estimate.read({"value": 0.5, "low": None, "high": None}).shown() == "0.50"
    assert Estimate.read({"value": None, "low": None, "high": None}).shown() == "n/a"
    assert Estimate.read(0.25).shown(3) == "0.250"
    iv = Estimate.read({"value": 0.5, "low": None, "high": 0.75}).interval()
    assert iv.value == 0.5 and iv.high == 0.75 and iv.low != iv.low  # a missing bound is NaN
    with pytest.raises(TypeError):
        Estimate.read("0.5")


# ------------------------------------------------------------------ the committed gallery


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.parent.name)
def test_the_committed_job_summary_reads_back_to_the_same_json(path):
    text = path.read_text()
    summary = JobSummary.from_dict(json.loads(text), source=str(path))
    assert _text(summary.to_dict()) == text.rstrip("\n")  # byte for byte, as run_job wrote it
    assert JobSummary.from_dict(summary.to_dict()) == summary
    assert summary.stages_run + summary.stages_reused == len(summary.stages)
    assert [r.relation for r in summary.relations] == list(summary.settings["relations"])
    row = summary.relations[0]
    assert row.faithfulness is not None and row.faithfulness.n_pairs == row.n_heldout
    assert row.positions is not None and sum(row.positions.role_counts.values()) == row.positions.n_units
    assert summary.job_settings().target_faithfulness == row.target
    assert summary.reuse.most_similar.noise is not None and summary.reuse.most_similar.noise.relative


def test_the_committed_job_summary_prints_its_table():
    path = ROOT / "smollm2-135m" / "job.json"
    assert path.is_file(), "the committed gallery has no smollm2-135m job"
    summary = JobSummary.from_dict(json.loads(path.read_text()))
    lines = format_summary(summary).splitlines()
    assert lines[0] == "main job on smollm2-135m: 10 relations, 10 stages run, 92 read back from disk, 642 s"
    capital = next(line for line in lines if line.startswith("country_capital_city "))
    assert capital.split()[1:4] == ["14+10", "99", "0.73"]
    assert "0.73 [0.61, 0.82]" in capital and "1.03 [0.97, 1.07]" in capital
    roles = [line for line in lines if line.startswith("country_capital_city ") and line.endswith("47/51")]
    assert len(roles) == 1 and roles[0].split()[1:3] == ["98", "98"]  # units, on edges
    assert (
        "  reuse, most similar: country_capital_city ~ country_largest_city edge Jaccard 0.59 "
        "(relative to ceilings 0.96)" in lines
    )
    assert any(
        line.startswith("  shared core: 115 edges in at least 5 circuits; heads a10.h6") for line in lines
    )
    assert "report:" not in "\n".join(lines)
    summary.report = "out/report/index.html"
    assert format_summary(summary).endswith("\n\nreport: out/report/index.html")
    assert summary.to_dict()["report"] == "out/report/index.html"


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.parent.name)
def test_the_committed_stage_records_read_back_into_their_types(path):
    records = sorted((path.parent / "stages").glob("*.json"))
    assert records
    for record in records:
        data = json.loads(record.read_text())
        kind = STAGES.get(data["stage"].split("/")[0], AnalysisStage)
        typed = kind.from_dict(data["result"])
        assert kind.from_dict(typed.to_dict()) == typed, record.name
        assert typed.files == data["result"]["files"]
        if kind is not ChannelsStage:  # the channels of 0.4 said writer/reader; they read, and write anew
            assert _text(typed.to_dict()) == _text(data["result"]), record.name
    channels = ChannelsStage.from_dict(
        json.loads((path.parent / "stages" / "channels.json").read_text())["result"]
    )
    assert channels.channels and all(c.sender and c.receiver for c in channels.channels)


def test_the_committed_reuse_report_types_its_noise_references():
    path = ROOT / "smollm2-135m" / "reuse" / "report.json"
    assert path.is_file(), "the committed gallery has no reuse report"
    text = path.read_text()
    report = ReuseReport.from_dict(json.loads(text))
    assert json.dumps(report.to_dict()) == json.dumps(json.loads(text))
    noise = report.noise
    assert noise is not None and noise.settings == NoiseSettings(200, 50, 100, 0, 1000)
    rows = noise.rows("edge_jaccard")
    assert len(rows) == len(report.relations) * (len(report.relations) - 1) // 2
    assert all(isinstance(r, SimilarityRow) and r.ceiling_a is not None for r in rows)
    assert report.most_similar.noise is not None and report.most_similar.noise.metric == report.similarity
    table = noise_table(noise, "edge_jaccard").splitlines()
    assert table[0] == "split-half ceilings (edge_jaccard; mean over 50 splits [2.5%, 97.5%]):"
    assert table[1] == f"  {'country_capital_city':<28}0.52 [0.47, 0.55]"
    first = max(rows, key=lambda r: r.value or -9)
    assert table[len(report.relations) + 2].startswith(f"  {first.a} / {first.b}: {first.interval.shown()}")


def test_a_reuse_pair_given_its_stored_noise_reads_it_into_its_type():
    from circuits.jobs.reuse_report import ReusePair

    row = {
        "a": "x",
        "b": "y",
        "metric": "edge_jaccard",
        "value": 0.4,
        "low": 0.3,
        "high": 0.5,
        "ceiling_a": {"value": 0.5, "low": 0.4, "high": 0.6},
        "ceiling_b": None,
        "matched": 0.35,
        "relative": None,
        "null": None,
        "p": None,
    }
    pair = ReusePair("x", "y", 0.4, 0.5, row)  # run_reuse hands over the stored dictionary
    assert isinstance(pair.noise, SimilarityRow) and pair.noise.ceiling_b is None
    assert pair.to_dict() == {"a": "x", "b": "y", "value": 0.4, "head_share": 0.5, "noise": row}
    assert ReusePair.from_dict(pair.to_dict()) == pair


def test_a_summary_keeps_the_dict_reading_of_0_4_one_version():
    assert JOBS, "the committed gallery has no job summary"
    path = JOBS[0]
    summary = JobSummary.from_dict(json.loads(path.read_text()))
    with pytest.deprecated_call(match=r"'JobSummary\[key\]' is now 'JobSummary.<attribute>"):
        assert summary["stages_run"] == summary.stages_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert summary["relations"][0]["circuit"] == summary.relations[0].circuit
    with pytest.raises(InputError, match=r"job\.json: not a readable job summary"):
        JobSummary.from_dict({"model": "m", "relations": [{"relation": "r"}]}, source="job.json")
    with pytest.raises(InputError, match="a job summary is a JSON object"):
        JobSummary.from_dict([], source="job.json")


# ------------------------------------------------------------------ the other commands' records


def _peak() -> KnockoutPeak:
    return KnockoutPeak(Estimate(-0.9, -1.0, -0.8), 0.7, [-0.1, None, -0.9], [0.0, 0.3, 0.6])


def _comparison(reuse: bool) -> ModelComparison:
    a = ModelCircuit(
        n_edges=99,
        n_layers=30,
        depth=[0.1] * 10,
        target_reached=True,
        faithfulness=Estimate(0.73, 0.61, 0.82, n_boot=200, n_pairs=10),
        n_known=73,
        n_facts=95,
        graph_edges=70651,
        fractions=[0.001, 0.01],
        curve=[0.6, 0.9],
        share=99 / 70651,
        knockout={"subject": _peak()},
        dla_counts={"subject": 4, "relation": 0, "mixed": 0, "other": 1},
    )
    b = ModelCircuit(n_edges=5, n_layers=18, depth=[0.0] * 9 + [1.0], target_reached=False)
    agreement = ReuseAgreement(
        ["r1", "r2", "r3"], None, None, 50, [["r1", "r2"], ["r1", "r3"]], False, [[[1.0]], [[1.0]]]
    )
    return ModelComparison(
        models=["m-a", "m-b"],
        relations=[RelationComparison("r1", {"m-a": a, "m-b": b}, {"m-a|m-b": 0.25})],
        reuse=agreement if reuse else None,
        target=0.8,
        depth_bins=10,
        seed=0,
        folder="out/compare-models",
    )


@pytest.mark.parametrize("reuse", [True, False])
def test_a_model_comparison_round_trips_and_prints(reuse):
    c = _comparison(reuse)
    data = json.loads(json.dumps(c.to_dict()))
    assert ModelComparison.from_dict(data) == c and ModelComparison.from_dict(data).to_dict() == data
    b = data["relations"][0]["models"]["m-b"]
    assert "share" not in b and "knockout" not in b and b["faithfulness"] is None
    text = format_comparison(c)
    assert " 99 (0.1%) F 0.73 [0.61, 0.82]" in text and " 5* F n/a" in text and text.endswith(c.folder or "")
    if reuse:
        assert "Spearman of the pairs' edge Jaccard undefined (a constant matrix)" in text
        assert "first to merge: r1 ~ r2 vs r1 ~ r3 (different)" in text
    else:
        assert "reuse: fewer than three shared relations with a reuse matrix in both models" in text


def test_a_circuit_comparison_round_trips_with_units_and_noise():
    row = SimilarityRow("A", "B", "edge_jaccard", Estimate(0.4, 0.3, 0.5), Estimate(0.5, 0.4, 0.6), None, 0.3)
    noise = CompareNoise(
        NoiseSettings(10, 2, 2, 0), {"A": {"edge_jaccard": Estimate(0.5, 0.4, 0.6)}}, {"edge_jaccard": row}
    )
    c = CircuitComparison(
        a="a",
        b="b",
        edges_a=3,
        edges_b=1,
        nodes_a=4,
        nodes_b=2,
        common_edges=1,
        similarities={"edge_jaccard": 1 / 3, "head_share": 0.0},
        common_heads=["a0.h0"],
        heads_of_a_in_b=1.0,
        heads_of_b_in_a=0.5,
        units=UnitCounts(3, 1, 1),
        noise=noise,
        diff=["d.dot"],
    )
    data = json.loads(json.dumps(c.to_dict()))
    assert CircuitComparison.from_dict(data) == c
    assert list(data)[7:12] == ["units_a", "units_b", "common_units", "edge_jaccard", "head_share"]
    assert (
        data["noise"]["settings"]["top_edges"] == 1000
        and data["noise"]["similarities"]["edge_jaccard"]["p"] is None
    )
    assert c.measure("common_units") == 1 and c.measure("edge_jaccard") == pytest.approx(1 / 3)
    assert c.measure("heads_of_b_in_a") == 0.5 and c.measure("a") is None
    assert CompareNoise.from_dict({"skipped": "why"}) == CompareNoise(skipped="why")


def test_an_intervention_record_round_trips():
    before = {"accuracy": Estimate(0.5, 0.0, 1.0), "logit_diff": Estimate(1.2, 0.4, 2.0)}
    record = InterventionRecord(
        model="m",
        relation="r",
        template="{} is in",
        split="heldout",
        n_prompts=2,
        edits=["ablate a1.h0:zero"],
        before=before,
        after=before,
        change={k: Estimate(0.0, 0.0, 0.0) for k in before},
        subjects=["x", "y"],
        before_values={"accuracy": [1.0, 0.0]},
        after_values={"accuracy": [1.0, 0.0]},
        prompts=InterventionPrompts({"template": "{} is in", "seed": 0}, "{} is in", 9, 5, 0.4, 5, 3, 2),
    )
    data = json.loads(json.dumps(record.to_dict()))
    assert next(iter(data)) == "analysis" and data["analysis"] == "intervene"
    assert list(data["prompts"])[:2] == ["template", "seed"]
    assert InterventionRecord.from_dict(data) == record
    assert (
        record.provenance().heading() == "m / r: 2 known-fact prompts (5 of 9 facts known), 0-shot '{} is in'"
    )
