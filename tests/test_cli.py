"""The `circuits` command: parsing, shared options, exit codes; models, relations, prompts, score, evaluate.

The commands on circuits as graphs (extract, render, compare, reuse, channels) are in ``test_cli_graphs``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from circuits.cli import build_parser, main
from circuits.relations import bundled_relations

EVERYTHING = ["--max-rank", "1000000000"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def restore_threads():
    """``--threads`` sets torch's thread count for the whole process: put it back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ parsing and shared options


def test_help_and_missing_command_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "models",
        "relations",
        "prompts",
        "score",
        "evaluate",
        "extract",
        "render",
        "compare",
        "reuse",
        "channels",
    ):
        assert command in out, command
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--threads", "1", "models", "--json"], ["models", "--threads", "1", "--json"]],
    ids=["before", "after"],
)
def test_threads_before_or_after_the_subcommand(capsys, restore_threads, argv):
    torch.set_num_threads(2)
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert json.loads(out)["default"] == "smollm2-135m"
    assert torch.get_num_threads() == 1


def test_shared_options_parse_in_either_place():
    parser = build_parser()
    assert parser.parse_args(["--threads", "3", "models"]).threads == 3  # not reset by the subcommand
    assert parser.parse_args(["models", "--threads", "3"]).threads == 3
    assert parser.parse_args(["-v", "relations"]).verbose is True
    assert parser.parse_args(["relations", "--verbose"]).verbose is True
    args = parser.parse_args(["score", "country_language", "--out", "o", "--threads", "2", "-v"])
    assert args.threads == 2
    assert args.verbose is True
    for command in (
        ["models"],
        ["relations"],
        ["evaluate", "d"],
        ["extract", "d"],
        ["render", "c.json"],
        ["compare", "a", "b"],
        ["reuse", "r1", "r2"],
        ["channels"],
        ["prompts", "country_language"],
    ):
        assert parser.parse_args([*command, "--threads", "1"]).threads == 1, command
    plain = parser.parse_args(["models"])
    assert not hasattr(plain, "threads")
    assert not hasattr(plain, "verbose")


def test_score_method_option_and_no_method_option(capsys):
    parser = build_parser()
    args = parser.parse_args(["score", "country_language", "--score-method", "eap", "--out", "o"])
    assert args.score_method == "eap"
    assert parser.parse_args(["score", "country_language", "--out", "o"]).score_method == "eap-ig"
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["score", "country_language", "--method", "eap", "--out", "o", "--model", "tiny-gpt2"])
    assert info.value.code == 2
    assert "--method" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["score", "country_language", "--score-method", "acdc", "--out", "o"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ------------------------------------------------------------------ models, relations, prompts


def test_models_lists_default_and_tiny(capsys):
    code, out, _ = run(capsys, "models", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["default"] == "smollm2-135m"
    assert "tiny-llama" in data["models"]


def test_relations_lists_bundled(capsys):
    code, out, _ = run(capsys, "relations", "--json")
    rows = json.loads(out)["relations"]
    assert code == 0
    assert [r["name"] for r in rows] == bundled_relations()
    assert all(r["facts"] >= 40 for r in rows)


def test_relations_without_model_loads_none(capsys, monkeypatch):
    import circuits.models.load

    def refuse(*args, **kwargs):
        raise AssertionError("`circuits relations` without --model loaded a model")

    monkeypatch.setattr(circuits.models.load, "load_model", refuse)
    code, out, _ = run(capsys, "relations", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["model"] is None
    assert all("known" not in row for row in data["relations"])
    code, out, _ = run(capsys, "relations")
    assert code == 0
    assert "known" not in out.splitlines()[0]
    assert "country_capital_city" in out


def test_relations_with_model_counts_known_facts(capsys):
    code, out, _ = run(capsys, "relations", "--model", "tiny-gpt2", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["model"] == "tiny-gpt2"
    assert all(0 <= row["known"] <= row["facts"] for row in data["relations"])


def test_prompts_json_has_pairs_and_roles(capsys):
    code, out, _ = run(
        capsys, "prompts", "country_capital_city", "--model", "tiny-llama", "--json", *EVERYTHING
    )
    data = json.loads(out)
    assert code == 0
    assert data["known"] == data["facts"]
    pair = data["scoring"][0]
    assert set(pair["roles"]) == {"subject", "last_subject", "relation", "last", "demo"}
    assert pair["answer"] != pair["corrupt_answer"]


def test_user_errors_exit_2_with_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "prompts", "no_such_relation", "--model", "tiny-gpt2")
    assert code == 2
    assert "neither a bundled relation nor a file" in err
    code, _, err = run(capsys, "prompts", "country_capital_city", "--model", "tiny-gpt2")
    assert code == 2
    assert re.search(r"knows \d of 95 facts with \d-shot '.*\{\}.*' \(rank <= 1", err)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, _, err = run(capsys, "score", str(bad), "--model", "tiny-gpt2", "--out", str(tmp_path / "o"))
    assert code == 2
    assert str(bad) in err
    assert "malformed JSON" in err
    code, _, err = run(capsys, "evaluate", str(tmp_path))
    assert code == 2
    assert "graph.json is missing" in err


# ------------------------------------------------------------------ score and evaluate


def test_score_then_evaluate_from_the_command_line(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, _ = run(
        capsys,
        "score",
        "country_capital_city",
        "--model",
        "tiny-gpt2",
        "--score-method",
        "eap",
        "--max-pairs",
        "12",
        "--out",
        str(out_dir),
        "--quiet",
        *EVERYTHING,
    )
    assert code == 0
    assert "scored" in out
    assert re.search(r"shared prefix: \d+% of the positions ran once", out)
    assert (out_dir / "scores.safetensors").is_file()
    assert (out_dir / "relation.json").is_file()
    code, out, _ = run(capsys, "evaluate", str(out_dir), "--json", "--quiet")
    result = json.loads(out)
    assert code == 0
    assert len(result["signed"]) == len(result["fractions"]) == 10
    assert result["absolute"][-1] == pytest.approx(1.0, abs=1e-4)  # every edge kept
    assert 0.0 <= result["hit_at_10"][-1] <= 1.0


def test_score_on_full_prompts_says_so_and_gives_the_same_scores(capsys, tmp_path):
    from circuits.store import load_scored

    argv = [
        "country_capital_city",
        "--model",
        "tiny-gpt2",
        "--score-method",
        "eap",
        "--max-pairs",
        "8",
        "--quiet",
        *EVERYTHING,
    ]
    run(capsys, "score", *argv, "--out", str(tmp_path / "cached"))
    code, out, _ = run(capsys, "score", *argv, "--out", str(tmp_path / "full"), "--full-prompts")
    assert code == 0 and "full prompts: turned off" in out
    cached, full = load_scored(tmp_path / "cached"), load_scored(tmp_path / "full")
    assert (
        full.metadata["shared_prefix"]["used"] is False and cached.metadata["shared_prefix"]["used"] is True
    )
    np.testing.assert_allclose(cached.scores, full.scores, atol=1e-5)


def test_csv_relation_with_a_template_on_the_command_line(capsys, tmp_path):
    path = tmp_path / "caps.csv"
    path.write_text("subject,object\nFrance,Paris\nSpain,Madrid\nItaly,Rome\nGermany,Berlin\nPeru,Lima\n")
    code, _, err = run(capsys, "prompts", str(path), "--model", "tiny-gpt2")
    assert code == 2
    assert "needs a template" in err
    code, out, _ = run(
        capsys,
        "prompts",
        str(path),
        "--model",
        "tiny-gpt2",
        "--json",
        "--template",
        "The capital of {} is",
        *EVERYTHING,
    )
    data = json.loads(out)
    assert code == 0
    assert data["template"] == "The capital of {} is"
    assert data["facts"] == 5
    out_dir = tmp_path / "run"
    code, _, _ = run(
        capsys,
        "score",
        str(path),
        "--template",
        "Capital of {}:",
        "--model",
        "tiny-gpt2",
        "--score-method",
        "eap",
        "--out",
        str(out_dir),
        "--quiet",
        *EVERYTHING,
    )
    assert code == 0
    assert json.loads((out_dir / "graph.json").read_text())["template"] == "Capital of {}:"
