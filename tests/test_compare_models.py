"""``circuits compare-models``: the main job on two models, their comparison, its figures and its
report page."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import run_cli

from circuits.compare.model_record import ModelComparison, ReuseAgreement
from circuits.compare.models import (
    COMPARISON,
    COMPARISON_FOLDER,
    compare_models,
    compare_reuse,
    depth_profile,
)
from circuits.vocab import InputError

MODELS = ("tiny-llama", "tiny-gemma3")
RELATIONS = ("country_capital_city", "country_currency", "country_language")
ARGS = [
    *RELATIONS,
    "--models",
    *MODELS,
    "--max-pairs",
    "8",
    "--analyses",
    "knockout,dla",
    "--analysis-pairs",
    "6",
    "--boot",
    "20",
    "--splits",
    "4",
    "--permutations",
    "5",
    "--size",
    "20",
    "--max-rank",
    "1000000000",
    "--no-positions",
    "--quiet",
    "--model-permutations",
    "50",
]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    from circuits.cli import main

    out = tmp_path_factory.mktemp("models")
    assert main(["compare-models", *ARGS, "--out", str(out), "--json"]) == 0
    return out


def test_compare_models_stores_the_comparison_and_its_figures(compared):
    folder = compared / COMPARISON_FOLDER
    data = json.loads((folder / COMPARISON).read_text())
    assert data["models"] == list(MODELS)
    assert [r["relation"] for r in data["relations"]] == list(RELATIONS)
    for name in ("curves.svg", "depth.svg", "knockout.svg", "reuse.svg"):
        assert (folder / name).read_text().lstrip().startswith("<?xml")
    for row in data["relations"]:
        for model in MODELS:
            d = row["models"][model]
            job = json.loads((compared / model / "job.json").read_text())
            mine = next(r for r in job["relations"] if r["relation"] == row["relation"])
            assert d["n_edges"] == mine["n_edges"] and d["faithfulness"] == mine["faithfulness"]
            assert sum(d["depth"]) == pytest.approx(1.0)
            assert set(d["knockout"]) >= {"subject", "last"}
        (overlap,) = row["depth_overlap"].values()
        a, b = (np.asarray(row["models"][m]["depth"]) for m in MODELS)
        assert overlap == pytest.approx(1 - 0.5 * np.abs(a - b).sum())


def test_the_stored_comparison_reads_back_into_its_type(compared):
    path = compared / COMPARISON_FOLDER / COMPARISON
    data = json.loads(path.read_text())
    typed = ModelComparison.from_dict(data, source=str(path))
    assert typed.to_dict() == data and ModelComparison.from_dict(typed.to_dict()) == typed
    assert typed.folder is None and typed.models == list(MODELS) and typed.target == 0.8
    # the comparison computed again is the stored one, typed
    again = compare_models(compared, list(MODELS), n_perm=50, seed=0)
    assert again == typed
    row = again.relations[0]
    llama = row.models[MODELS[0]]
    assert llama.knockout is not None and set(llama.knockout) >= {"subject", "last"}
    assert llama.faithfulness is not None and llama.faithfulness.n_boot == 20
    assert llama.dla_counts is not None and set(llama.dla_counts) >= {"subject", "relation", "mixed"}
    assert again.reuse is not None and again.reuse.relations == list(RELATIONS)
    with pytest.raises(InputError, match=r"comparison\.json: not a readable comparison across models"):
        ModelComparison.from_dict({**data, "relations": [{"relation": "r"}]}, source=str(path))


def test_the_reuse_matrices_compared_are_each_models_own(compared):
    data = json.loads((compared / COMPARISON_FOLDER / COMPARISON).read_text())
    reuse = data["reuse"]
    for model, matrix in zip(MODELS, reuse["matrices"], strict=True):
        report = json.loads((compared / model / "reuse" / "report.json").read_text())
        lines = report["matrix_csv"].strip().splitlines()
        names = lines[0].split(",")[1:]
        stored = {
            (names[i], names[j]): float(v)
            for i, line in enumerate(lines[1:])
            for j, v in enumerate(line.split(",")[1:])
        }
        for i, a in enumerate(reuse["relations"]):
            for j, b in enumerate(reuse["relations"]):
                assert matrix[i][j] == pytest.approx(stored[(a, b)])


def test_a_rerun_reads_every_stage_back_and_gives_the_same_comparison(compared, capsys):
    from circuits.cli import main

    before = json.loads((compared / COMPARISON_FOLDER / COMPARISON).read_text())
    capsys.readouterr()
    assert main(["compare-models", *ARGS, "--out", str(compared)]) == 0
    text = capsys.readouterr().out
    assert "depth overlap" in text and "reuse matrices" in text
    after = json.loads((compared / COMPARISON_FOLDER / COMPARISON).read_text())
    assert after == before
    for model in MODELS:
        assert json.loads((compared / model / "job.json").read_text())["stages_run"] == 0


def test_the_report_has_a_page_across_models(compared, tmp_path, capsys):
    out = tmp_path / "report"
    run_cli(capsys, "report", str(compared), "--out", str(out))
    page = (out / "models.html").read_text()
    for name in ("curves.svg", "depth.svg", "knockout.svg", "reuse.svg", "comparison.json"):
        assert f"{COMPARISON_FOLDER}/{name}" in page
    assert all(rel in page for rel in RELATIONS)
    assert 'href="models.html"' in (out / "index.html").read_text()


def test_reuse_matrices_that_agree_correlate_and_merge_alike():
    names = ["a", "b", "c", "d", "e"]
    rng = np.random.default_rng(0)
    upper = rng.random((5, 5))
    values = ((upper + upper.T) / 2).tolist()
    for i in range(5):
        values[i][i] = 1.0
    same = compare_reuse(
        {"names": names, "values": values}, {"names": names, "values": values}, names, 200, 0
    )
    assert same is not None and same.spearman == pytest.approx(1.0)
    assert same.p is not None and same.p < 0.05 and same.same_first_merge
    assert ReuseAgreement.from_dict(same.to_dict()) == same
    with pytest.deprecated_call(match=r"'ReuseAgreement\[key\]'"):
        assert same["spearman"] == same.spearman  # the dict reading of 0.4, one more version
    flipped = [[1.0 if i == j else 1.0 - values[i][j] for j in range(5)] for i in range(5)]
    other = compare_reuse(
        {"names": names, "values": values}, {"names": names, "values": flipped}, names, 200, 0
    )
    assert other is not None and other.spearman == pytest.approx(-1.0)
    assert other.p is not None and other.p > 0.5
    assert other.first_merge[0] != other.first_merge[1] and not other.same_first_merge
    assert compare_reuse({"names": names, "values": values}, None, names, 10, 0) is None
    assert (
        compare_reuse(
            {"names": names[:2], "values": [[1, 0], [0, 1]]},
            {"names": names[:2], "values": [[1, 0], [0, 1]]},
            names,
            10,
            0,
        )
        is None
    )


def test_depth_profiles_put_late_circuits_late():
    late = [
        {"source": "a5.h0", "target": "logits", "score": -1.0},
        {"source": "m4", "target": "a5.h1<q>", "score": 2},
    ]
    profile = depth_profile(late, n_layers=6)
    assert sum(profile[7:]) == pytest.approx(1.0) and sum(profile[:7]) == 0
    assert depth_profile([], n_layers=6) == [0.0] * 10


def test_a_hostile_job_summary_is_refused_with_its_file_and_field(compared, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(compared, root)
    job = root / MODELS[1] / "job.json"
    data = json.loads(job.read_text())
    data["relations"][0]["relation"] = "../../etc"
    job.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"job\.json: relation '\.\./\.\./etc' is not"):
        compare_models(root, list(MODELS))
    with pytest.raises(InputError, match="no such job summary"):
        compare_models(root, [MODELS[0], "absent-model"])
    with pytest.raises(InputError, match="at least two different models"):
        compare_models(root, [MODELS[0], MODELS[0]])


def test_unknown_fields_in_a_stored_record_name_the_folder(compared, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(compared, root)
    knock = root / MODELS[0] / RELATIONS[0] / "mechanisms" / "knockout.json"
    data = json.loads(knock.read_text())
    data["curves"] = [{"source": "subject", "strongest": {"start": "x"}}]
    knock.write_text(json.dumps(data))
    with pytest.raises(InputError, match=rf"{RELATIONS[0]}: a stored record lacks"):
        compare_models(root, list(MODELS))
