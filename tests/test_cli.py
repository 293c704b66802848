"""The `circuits` command and the score -> store -> evaluate pipeline on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from circuits.cli import main
from circuits.data import bundled_relations
from circuits.pipeline import ScoreSettings, evaluate_scored, score_relation
from circuits.store import load_scored, save_scored
from circuits.vocab import InputError

EVERYTHING = ["--max-rank", "1000000000"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_default_and_tiny(capsys):
    code, out, _ = run(capsys, "models", "--json")
    data = json.loads(out)
    assert code == 0 and data["default"] == "smollm2-135m" and "tiny-llama" in data["models"]


def test_relations_lists_bundled(capsys):
    code, out, _ = run(capsys, "relations", "--json")
    rows = json.loads(out)["relations"]
    assert code == 0 and [r["name"] for r in rows] == bundled_relations()
    assert all(r["facts"] >= 40 for r in rows)


def test_prompts_json_has_pairs_and_roles(capsys):
    code, out, _ = run(capsys, "prompts", "country_capital_city", "--model", "tiny-llama", "--json",
                       *EVERYTHING)  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["known"] == data["facts"]
    pair = data["scoring"][0]
    assert set(pair["roles"]) == {"subject", "last_subject", "relation", "last"}
    assert pair["answer"] != pair["corrupt_answer"]


def test_user_errors_exit_2_with_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "prompts", "no_such_relation", "--model", "tiny-gpt2")
    assert code == 2 and "neither a bundled relation nor a file" in err
    code, _, err = run(capsys, "prompts", "country_capital_city", "--model", "tiny-gpt2")
    assert code == 2 and "knows 0 of" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, _, err = run(capsys, "score", str(bad), "--model", "tiny-gpt2", "--out", str(tmp_path / "o"))
    assert code == 2 and str(bad) in err and "malformed JSON" in err
    code, _, err = run(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "graph.json is missing" in err


def test_score_then_evaluate_from_the_command_line(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, _ = run(capsys, "score", "country_capital_city", "--model", "tiny-gpt2", "--method", "eap",
                       "--max-pairs", "12", "--out", str(out_dir), "--quiet", *EVERYTHING)  # fmt: skip
    assert code == 0 and "scored" in out
    assert (out_dir / "scores.safetensors").is_file() and (out_dir / "relation.json").is_file()
    code, out, _ = run(capsys, "evaluate", str(out_dir), "--json", "--quiet")
    result = json.loads(out)
    assert code == 0
    assert len(result["signed"]) == len(result["fractions"]) == 10
    assert result["absolute"][-1] == pytest.approx(1.0, abs=1e-4)  # every edge kept
    assert 0.0 <= result["hit_at_10"][-1] <= 1.0


def test_scored_graph_round_trips_bit_for_bit(tiny_llama, tmp_path):
    settings = ScoreSettings(method="eap-ig", ig_steps=2, max_pairs=8, max_rank=10**9)
    graph, pairs = score_relation(tiny_llama, "country_language", settings, progress=False)
    save_scored(tmp_path, graph, pairs.relation)
    back = load_scored(tmp_path)
    assert np.array_equal(back.scores, graph.scores) and back.scores.dtype == np.float32
    assert back.metadata == json.loads(json.dumps(graph.metadata))
    for key in ("model", "relation", "method", "metric", "ablation", "ig_steps", "n_pairs_scoring",
                "split_seed", "package_version"):  # fmt: skip
        assert key in back.metadata
    assert back.metadata["ig_steps"] == 2 and back.metadata["n_pairs_scoring"] == len(pairs.scoring)


def test_exact_method_refines_top_edges(tiny_gpt2, tmp_path):
    settings = ScoreSettings(method="exact", max_pairs=6, max_rank=10**9, exact_top=20)
    graph, _ = score_relation(tiny_gpt2, "country_language", settings, progress=False)
    assert graph.metadata["exact_refined_edges"] == 20


def test_user_relation_file_is_evaluated_from_its_copy(tiny_gpt2, tmp_path):
    rel = tmp_path / "mine.json"
    samples = [{"subject": s, "object": o} for s, o in [
        ("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"),
        ("Greece", "Athens"), ("Egypt", "Cairo"), ("Peru", "Lima"), ("Cuba", "Havana")]]  # fmt: skip
    rel.write_text(json.dumps({"name": "mine", "prompt_templates": ["The capital of {} is"],
                               "samples": samples}))  # fmt: skip
    graph, pairs = score_relation(tiny_gpt2, rel, ScoreSettings(method="eap", max_rank=10**9), progress=False)
    save_scored(tmp_path / "out", graph, pairs.relation)
    rel.unlink()  # the evaluation must not need the original file
    result, _ = evaluate_scored(tmp_path / "out", model=tiny_gpt2, progress=False)
    assert result.n_pairs == len(pairs.heldout)


def test_settings_reject_unknown_names():
    with pytest.raises(InputError, match="unknown method"):
        ScoreSettings(method="acdc")
    with pytest.raises(InputError, match="unknown ablation"):
        ScoreSettings(ablation="resample")


def test_csv_relation_with_a_template_on_the_command_line(capsys, tmp_path):
    path = tmp_path / "caps.csv"
    path.write_text("subject,object\nFrance,Paris\nSpain,Madrid\nItaly,Rome\nGermany,Berlin\nPeru,Lima\n")
    code, _, err = run(capsys, "prompts", str(path), "--model", "tiny-gpt2")
    assert code == 2 and "needs a template" in err
    code, out, _ = run(capsys, "prompts", str(path), "--model", "tiny-gpt2", "--json",
                       "--template", "The capital of {} is", *EVERYTHING)  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["template"] == "The capital of {} is" and data["facts"] == 5
    out_dir = tmp_path / "run"
    code, _, _ = run(capsys, "score", str(path), "--template", "Capital of {}:", "--model", "tiny-gpt2",
                     "--method", "eap", "--out", str(out_dir), "--quiet", *EVERYTHING)  # fmt: skip
    assert code == 0
    assert json.loads((out_dir / "graph.json").read_text())["template"] == "Capital of {}:"
