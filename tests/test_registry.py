"""The registry of analyses: every record round-trips and reads the gallery's old files; a new analysis
is one registry entry, and the command line, the main job and the report pick it up."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import run_cli

from circuits.jobs.mechanisms import PromptChoice
from circuits.records.base import AnalysisRecord, AnalysisSettings, Provenance, pairs_record
from circuits.registry import ANALYSES, Analysis, job_analyses
from circuits.vocab import InputError

GALLERY = Path(__file__).resolve().parents[1] / "graphs"
ALL = 10**9
TINY = ["--model", "tiny-llama", "--max-rank", str(ALL), "--max-pairs", "6", "--boot", "10", "--quiet"]
SMALL = {
    "knockout": {},
    "enrichment": {"top_k": 20},
    "extraction": {},
    "dla": {"top": 3},
    "motif": {},
    "mlp": {"layers": (1, 2)},
    "suppression": {"last_layers": 1, "n_control": 3},
}


def committed(name: str) -> list[Path]:
    """The gallery's stored records of analysis ``name`` (per relation, or per model)."""
    return sorted(GALLERY.glob(f"*/*/mechanisms/{name}.json")) + sorted(GALLERY.glob(f"*/{name}/{name}.json"))


# ------------------------------------------------------------ the records of every entry


def test_every_entry_is_consistent_and_every_analysis_has_small_settings():
    assert set(SMALL) == set(ANALYSES)
    for name, entry in ANALYSES.items():
        assert name == entry.record.NAME and entry.version >= 1
        assert issubclass(entry.settings, AnalysisSettings) and issubclass(entry.record, AnalysisRecord)
        entry.settings()  # the defaults are valid
    assert "suppression" not in job_analyses() and "knockout" in job_analyses()


@pytest.mark.parametrize("name", list(ANALYSES))
def test_an_old_record_of_the_gallery_reads_and_writes_back_its_keys(name):
    paths = committed(name)
    assert paths, f"the committed gallery has no {name} record"
    entry = ANALYSES[name]
    for path in paths:
        old = json.loads(path.read_text(encoding="utf-8"))
        assert "analysis_version" not in old  # written before analyses had versions
        record = entry.read(old, source=str(path))
        assert record.provenance.analysis_version == 0 and record.provenance.design == "subject-swap"
        assert record.provenance.model == old["model"] and record.provenance.relation == old["relation"]
        new = json.loads(json.dumps(record.to_dict(), allow_nan=False))
        assert {k: new[k] for k in old} == old, path  # the old layout, unchanged
        assert set(new) - set(old) <= {"analysis_version", "design", "package_version", "template", "seconds"}
        assert json.loads(json.dumps(entry.read(new).to_dict())) == new
        assert record.summary_lines() and isinstance(record.finding(), str)
        assert ET.fromstring(entry.draw(record)).tag.endswith("svg")


@pytest.mark.parametrize("name", list(ANALYSES))
def test_a_fresh_record_round_trips_through_its_json(tiny_llama, name):
    from circuits.jobs.analyses import run_analysis

    entry = ANALYSES[name]
    settings = entry.settings(n_boot=10, **SMALL[name])
    relation = ["country_capital_city"] if entry.scope == "relations" else "country_capital_city"
    choice = PromptChoice(max_pairs=8, max_rank=ALL, templates="first")
    record, files = run_analysis(name, tiny_llama, relation, choice, settings, progress=False)
    data = json.loads(json.dumps(record.to_dict(), allow_nan=False))
    assert files == [] and data["analysis"] == name and data["analysis_version"] == entry.version
    assert data["prompts"]["max_pairs"] == 8 and data["n_boot"] == 10 and data["model"] == "tiny-llama"
    again = entry.read(data)
    stamped = dataclasses.replace(record.provenance, seconds=round(record.provenance.seconds, 3))
    assert type(again) is entry.record and again.provenance == stamped
    assert json.loads(json.dumps(again.to_dict())) == data
    assert again.summary_lines() == record.summary_lines() and again.finding() == record.finding()


def test_a_record_of_another_analysis_or_without_its_fields_is_refused():
    knockout, dla = ANALYSES["knockout"], ANALYSES["dla"]
    with pytest.raises(InputError, match=r"x.json: a 'dla' record, not a 'knockout' record"):
        knockout.read({"analysis": "dla", "model": "m", "relation": "r"}, source="x.json")
    with pytest.raises(InputError, match=r"not a readable 'dla' record \(KeyError\('direction'\)\)"):
        dla.read({"analysis": "dla", "model": "m", "relation": "r"})
    with pytest.raises(InputError, match="unknown analysis 'tarot'"):
        from circuits.registry import analysis

        analysis("tarot")


# ------------------------------------------------------------ a new analysis is one registry entry


@dataclass(frozen=True)
class ToySettings(AnalysisSettings):
    scale: float = field(default=2.0, metadata={"help": "a multiplier (default 2)", "range": (0.0, 10.0)})
    loud: bool = field(default=False, metadata={"help": "shout the finding"})


@dataclass
class ToyRecord(AnalysisRecord):
    NAME: ClassVar[str] = "toy"
    VERSION: ClassVar[int] = 3

    lengths: list[int]
    scale: float
    loud: bool = False

    def description(self) -> str:
        return "the length of each prompt's subject, times the scale"

    def own_dict(self) -> dict[str, Any]:
        return {"lengths": self.lengths, "scale": self.scale, "loud": self.loud}

    @classmethod
    def read_own(cls, data: Any, provenance: Provenance) -> ToyRecord:
        return cls(provenance, [int(n) for n in data["lengths"]], float(data["scale"]), bool(data["loud"]))

    def summary_lines(self, top: int | None = None) -> list[str]:
        return [self.provenance.heading(), f"toy: {sum(self.lengths) * self.scale:g} scaled characters"]

    def finding(self) -> str:
        text = f"{len(self.lengths)} subjects measured"
        return text.upper() if self.loud else text


def toy_run(model, pairs, settings, *, seed=0, progress=True) -> ToyRecord:
    provenance = ToyRecord.provenance_of(
        model.name, pairs.relation.name, template=pairs.template, n_prompts=len(pairs.pairs), seed=seed
    )
    lengths = [len(p.fact.subject) for p in pairs.pairs]
    return ToyRecord(provenance, lengths, settings.scale, settings.loud).with_prompts(pairs_record(pairs))


def toy_draw(record: ToyRecord) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg"><text>{len(record.lengths)} toy subjects</text></svg>'


@pytest.fixture()
def toy(monkeypatch):
    entry = Analysis("toy", "Toy analysis", "measure the subjects", ToySettings, ToyRecord, toy_run, toy_draw)
    monkeypatch.setitem(ANALYSES, "toy", entry)
    return entry


def test_the_command_line_builds_a_command_from_the_entry(toy, capsys, tmp_path):
    code, out, err = run_cli(capsys, "toy", "country_capital_city", *TINY, "--scale", "3", "--loud", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["analysis"] == "toy" and record["scale"] == 3.0 and record["loud"] is True
    assert record["analysis_version"] == 3 and len(record["lengths"]) == record["n_prompts"] == 6
    code, out, err = run_cli(capsys, "toy", "country_capital_city", *TINY, "--out", str(tmp_path))
    assert code == 0, err
    assert out.splitlines()[0].startswith("tiny-llama / country_capital_city: 6 known-fact prompts")
    assert "scaled characters" in out and f"wrote {tmp_path / 'toy.json'}" in out
    assert ToyRecord.from_dict(json.loads((tmp_path / "toy.json").read_text())).scale == 2.0
    code, _, err = run_cli(capsys, "toy", "country_capital_city", *TINY, "--scale", "11")
    assert code == 2 and "argument --scale: must be a number in [0, 10], not '11'" in err


def test_the_main_job_runs_the_entry_as_a_stage_keyed_by_its_version(toy, tiny_llama, tmp_path, monkeypatch):
    from circuits.jobs.job_settings import JobSettings, relation_digest
    from circuits.jobs.job_stages import MainJob
    from circuits.relations import load_relation

    settings = JobSettings(
        relations=("country_capital_city", "country_currency"),
        analyses=("toy",),
        analysis_pairs=6,
        max_rank=ALL,
        n_boot=10,
    )
    assert "toy" in JobSettings().analyses  # the default: every analysis of one relation
    rel = load_relation("country_capital_city")
    job = MainJob(tiny_llama, settings, tmp_path, progress=False)

    def stage() -> Any:
        return job.analysis("toy", "country_capital_city", rel, relation_digest(rel), {})

    first = stage()
    assert first.finding == "6 subjects measured" and first.n_prompts == 6
    assert first.files == [f"country_capital_city/mechanisms/toy.{x}" for x in ("json", "svg")]
    stage()
    assert [r.reused for r in job.runs] == [False, True]
    monkeypatch.setattr(ToyRecord, "VERSION", 4)  # a new version of the analysis runs again
    stage()
    assert [r.reused for r in job.runs] == [False, True, False]
    stored = json.loads((tmp_path / "tiny-llama" / first.files[0]).read_text())
    assert stored["analysis_version"] == 4


def test_the_report_shows_the_entrys_figure_with_its_title_and_caption(toy, tiny_llama, tmp_path):
    from circuits.jobs.analyses import run_analysis
    from circuits.report import build_report

    choice = PromptChoice(max_pairs=6, max_rank=ALL)
    run_analysis(
        "toy", tiny_llama, "country_capital_city", choice, store=tmp_path / "results", progress=False
    )
    index = build_report(tmp_path / "results", out=tmp_path / "site")
    page = (index.parent / "tiny-llama" / "country_capital_city.html").read_text(encoding="utf-8")
    assert "Toy analysis" in page
    assert "Analysis toy: 6 prompts. The length of each prompt&#x27;s subject, times the scale." in page


def test_an_unregistered_analysis_is_refused_by_the_job_settings():
    from circuits.jobs.job_settings import JobSettings

    with pytest.raises(InputError, match="unknown analyses"):
        JobSettings(analyses=("toy",))


def test_settings_are_frozen_and_validated():
    from circuits.records.dla import DLASettings
    from circuits.records.mlp import MLPSettings

    with pytest.raises(dataclasses.FrozenInstanceError):
        DLASettings().top = 3  # type: ignore[misc]
    with pytest.raises(InputError, match="unknown position 'middle'; valid: last, subject"):
        MLPSettings(position="middle")
    with pytest.raises(InputError, match=r"mixed-share must be a share in \[0, 1\]"):
        DLASettings(mixed_share=2.0)
    assert DLASettings().as_dict()["direction"] == "answer"
