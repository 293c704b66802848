"""Careless and hostile command lines: no silent wrong result, no lost work, no traceback (tiny models).

Every case runs the real ``circuits`` command in-process and checks its exit
status, that the error is one line naming what was wrong, and what is (or is
not) left on disk.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket

import pytest
from conftest import run_cli as run

from circuits.cli import main

TINY = ["--model", "tiny-llama", "--max-rank", "1000000000", "--quiet"]


def one_line_error(err: str, command: str) -> str:
    """The single error line on stderr (warnings logged before it are allowed), checked for a traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"circuits {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def scored_dirs(tmp_path_factory):
    """A scored graph of each tiny model, with one extracted circuit each."""
    root = tmp_path_factory.mktemp("scored")
    out = {}
    for model in ("tiny-llama", "tiny-gpt2"):
        folder = root / model
        assert (
            main(
                [
                    "score",
                    "country_capital_city",
                    *TINY,
                    "--model",
                    model,
                    "--max-pairs",
                    "8",
                    "--ig-steps",
                    "1",
                    "--out",
                    str(folder),
                ]
            )
            == 0
        )
        assert main(["extract", str(folder), "--size", "10"]) == 0
        out[model] = folder
    return out


# ------------------------------------------------------------------ values that gave silent wrong results
@pytest.mark.parametrize(
    ("argv", "command", "expected"),
    [
        (
            ["score", "country_capital_city", "--max-pairs", "0"],
            "score",
            "--max-pairs: must be a whole number >= 2",
        ),
        (
            ["score", "country_capital_city", "--max-pairs", "1"],
            "score",
            "--max-pairs: must be a whole number >= 2",
        ),
        (["score", "country_capital_city", "--max-pairs", "-3"], "score", "not '-3'"),
        (["score", "country_capital_city", "--ig-steps", "0"], "score", "--ig-steps"),
        (["score", "country_capital_city", "--batch-size", "-1"], "score", "--batch-size"),
        (
            ["score", "country_capital_city", "--min-prob", "nan"],
            "score",
            "--min-prob: must be a number in [0, 1]",
        ),
        (["score", "country_capital_city", "--threads", "-2"], "score", "--threads"),
        (
            ["score", "country_capital_city", "--device", "bogus"],
            "score",
            "unknown device 'bogus'; valid: cpu",
        ),
        (["score", "country_capital_city", "--device", "cuda:99"], "score", "device 'cuda:99'"),
        (["reuse", "country_capital_city", "country_currency", "--size", "0"], "reuse", "--size"),
        (
            ["run", "country_capital_city", "country_currency", "--target-faithfulness", "1.5"],
            "run",
            "--target-faithfulness: must be a number in (0, 1]",
        ),
    ],
)
def test_bad_values_are_refused_before_any_work(capsys, tmp_path, argv, command, expected):
    out = tmp_path / "out"
    extra = ["--out", out] if command in ("score", "run") else ["--store", out]
    code, _, err = run(capsys, *argv, *TINY, *extra)
    assert code == 2
    assert expected in one_line_error(err, command)
    assert not out.exists()  # nothing was written


def test_extract_size_zero_or_beyond_the_graph_is_an_error(capsys, scored_dirs):
    folder = scored_dirs["tiny-llama"]
    before = sorted(p.name for p in folder.iterdir())
    code, _, err = run(capsys, "extract", folder, "--size", "0")
    assert code == 2
    assert "--size: must be a whole number >= 1, not '0'" in one_line_error(err, "extract")
    code, _, err = run(capsys, "extract", folder, "--size", "100000")
    assert code == 2
    line = one_line_error(err, "extract")
    assert "size 100000 is larger than the graph, which has 190 edges; a size is from 1 to 190" in line
    assert sorted(p.name for p in folder.iterdir()) == before  # no circuit named after the request
    code, _, err = run(capsys, "extract", folder, "--extract-method", "nodes", "--size", "16")
    assert code == 2
    assert "15 heads and MLPs" in one_line_error(err, "extract")
    code, out, _ = run(capsys, "extract", folder, "--size", "190", "--no-prune")
    assert code == 0
    assert "190 edges" in out


def test_compare_refuses_circuits_of_two_models(capsys, scored_dirs):
    a = scored_dirs["tiny-llama"] / "top-n-signed-10.circuit.json"
    b = scored_dirs["tiny-gpt2"] / "top-n-signed-10.circuit.json"
    code, out, err = run(capsys, "compare", a, b)
    assert code == 2
    assert out == ""
    line = one_line_error(err, "compare")
    assert "tiny-llama (3 layers, 4 heads, 2 key/value heads)" in line
    assert "tiny-gpt2 (2 layers, 4 heads, 4 key/value heads)" in line
    code, out, _ = run(capsys, "compare", a, a, "--boot", "0")
    assert code == 0
    assert "edge_jaccard" in out


def test_evaluate_names_both_shapes_when_a_graph_does_not_fit_its_model(capsys, tmp_path, scored_dirs):
    folder = tmp_path / "edited"
    shutil.copytree(scored_dirs["tiny-gpt2"], folder)
    meta = json.loads((folder / "graph.json").read_text())
    meta["model"] = "tiny-llama"  # a graph of tiny-gpt2's shape claiming to be tiny-llama's
    (folder / "graph.json").write_text(json.dumps(meta))
    code, _, err = run(capsys, "evaluate", folder, "--boot", "0", "--quiet")
    assert code == 2
    line = one_line_error(err, "evaluate")
    assert "(2 layers, 4 heads, 4 key/value heads) is not the shape of 'tiny-llama'" in line
    assert "(3 layers, 4 heads, 2 key/value heads)" in line


# ------------------------------------------------------------------ lost or mixed work
def test_score_refuses_to_overwrite_a_scored_run_unless_forced(capsys, tmp_path):
    folder = tmp_path / "run"
    args = ["score", "country_capital_city", *TINY, "--max-pairs", "8", "--ig-steps", "1", "--out", folder]
    assert run(capsys, *args)[0] == 0
    assert run(capsys, "extract", folder, "--size", "5")[0] == 0
    assert run(capsys, "render", folder / "top-n-signed-5.circuit.json", "--format", "dot")[0] == 0
    (folder / "notes.txt").write_text("mine")
    graph_before = (folder / "graph.json").read_bytes()
    code, _, err = run(capsys, *args[:2], *args[2:])
    assert code == 2
    line = one_line_error(err, "score")
    assert "already holds a scored graph (relation country_capital_city, model tiny-llama)" in line
    assert "1 circuit(s)" in line and "--force" in line
    assert (folder / "graph.json").read_bytes() == graph_before  # untouched
    code, out, _ = run(capsys, "score", "country_language", *args[2:], "--force")
    assert code == 0
    assert "removed 2 of its files" in out
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "graph.json",
        "notes.txt",
        "relation.json",
        "scores.safetensors",
    ]  # the old circuits went
    assert json.loads((folder / "graph.json").read_text())["relation"] == "country_language"


def test_a_folder_of_other_files_is_refused_unless_forced(capsys, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    args = ["score", "country_capital_city", *TINY, "--max-pairs", "8", "--ig-steps", "1", "--out", folder]
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "is not empty and holds no scored graph" in one_line_error(err, "score")
    assert run(capsys, *args, "--force")[0] == 0
    assert (folder / "thesis.tex").read_text() == "keep me"


@pytest.mark.parametrize("where", ["file", "under-a-file", "read-only"])
def test_an_unwritable_output_is_found_before_the_work(capsys, tmp_path, where):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out = {"file": a_file, "under-a-file": a_file / "sub", "read-only": "/proc/circuits-test-out"}[where]
    for argv, command in (
        (["score", "country_capital_city", *TINY, "--out", out], "score"),
        (["reuse", "country_capital_city", "country_currency", *TINY, "--store", out], "reuse"),
        (["run", "country_capital_city", "country_currency", *TINY, "--out", out], "run"),
        (["report", tmp_path, "--out", out], "report"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        line = one_line_error(err, command)
        assert str(out) in line
        expected = {
            "file": "is a file, not a directory",
            "under-a-file": "is a file, so no directory can be made",
            "read-only": "cannot write in /proc",
        }[where]
        assert expected in line
    assert a_file.read_text() == "x"


def test_reuse_scores_again_when_the_relation_file_changes_not_when_it_moves(capsys, tmp_path):
    from circuits.relations import load_relation
    from circuits.relations.schema import relation_to_json

    first = tmp_path / "a" / "capital.json"
    first.parent.mkdir()
    data = relation_to_json(load_relation("country_capital_city"))
    first.write_text(json.dumps(data))
    store = tmp_path / "store"
    args = [
        "--size",
        "10",
        "--boot",
        "0",
        "--no-cross",
        "--ig-steps",
        "1",
        "--max-pairs",
        "6",
        "--json",
        *TINY,
        "--store",
        store,
    ]

    def sources(relation_file):
        code, out, err = run(capsys, "reuse", relation_file, "country_currency", *args)
        assert code == 0, err
        return {row["relation"]: row["source"] for row in json.loads(out)["circuits"]}

    assert sources(first) == {"capital": "scored", "country_currency": "scored"}
    moved = tmp_path / "b" / "capital.json"
    moved.parent.mkdir()
    shutil.copy(first, moved)
    assert sources(moved)["capital"] == "stored"  # same content elsewhere: reused
    data["samples"] = data["samples"][:-5]
    moved.write_text(json.dumps(data))
    assert sources(moved) == {"capital": "scored", "country_currency": "stored"}  # edited: scored again


def test_a_relation_given_twice_is_named(capsys, tmp_path):
    for command, out in (("reuse", "--store"), ("run", "--out")):
        code, _, err = run(
            capsys, command, "country_capital_city", "country_capital_city", *TINY, out, tmp_path / command
        )
        assert code == 2
        line = one_line_error(err, command)
        assert "country_capital_city is given twice" in line
        assert "{}" not in line


def test_ctrl_c_prints_one_line_and_exits_130(capsys, monkeypatch, tmp_path):
    import circuits.attribution.score

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(circuits.attribution.score, "score_relation", interrupted)
    code, _, err = run(capsys, "score", "country_capital_city", *TINY, "--out", tmp_path / "o")
    assert code == 130
    assert err.strip().splitlines() == ["circuits score: interrupted; nothing half-written was left"]
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ resources and the network
def test_a_large_relation_with_a_pair_cap_checks_a_budget_of_facts(tiny_llama):
    from circuits.relations import load_relation, make_pairs
    from circuits.relations.facts import FACT_BUDGET
    from circuits.relations.schema import Fact

    base = load_relation("country_capital_city")
    facts = tuple(Fact(f"{f.subject} {i}", f.object) for i in range(40) for f in base.facts)  # 3,800 facts
    big = dataclasses.replace(base, facts=facts)
    pairs = make_pairs(tiny_llama, big, max_rank=10**9, max_pairs=8, seed=3)
    assert pairs.n_facts == len(facts)
    assert pairs.n_checked == FACT_BUDGET  # one budget held enough known, pairable facts
    assert len(pairs.pairs) == 8
    again = make_pairs(tiny_llama, big, max_rank=10**9, max_pairs=8, seed=3)
    assert [p.as_dict() for p in again.pairs] == [p.as_dict() for p in pairs.pairs]  # seeded


def test_a_relation_within_the_budget_is_checked_whole_and_capped_after(tiny_llama):
    from circuits.relations import load_relation, make_pairs

    relation = load_relation("country_capital_city")
    capped = make_pairs(tiny_llama, relation, max_rank=10**9, max_pairs=6)
    whole = make_pairs(tiny_llama, relation, max_rank=10**9)
    assert capped.n_checked == whole.n_checked == len(relation.facts)
    assert [p.as_dict() for p in capped.pairs] == [p.as_dict() for p in whole.pairs[:6]]


def test_an_unknown_model_fails_at_once_when_the_hub_is_unreachable(monkeypatch):
    from huggingface_hub import constants

    from circuits.models import load_model
    from circuits.vocab import ModelNotAvailableError

    with socket.socket() as closed:  # a port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelNotAvailableError, match=r"the hub \(127\.0\.0\.1\) cannot be reached"):
        load_model("no-such-org/no-such-model")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE is set"):
        load_model("no-such-org/no-such-model")
