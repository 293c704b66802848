"""The `circuits` commands on circuits as graphs: extract, render, compare, reuse, channels.

Toy graphs and tiny models; parsing, shared options and the other commands are in ``test_cli``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydot
import pytest
from conftest import toy_scored

from circuits.cli import build_parser, main
from circuits.store import MANIFEST, read_circuit, save_scored
from circuits.vocab import InputError

HAS_DOT = shutil.which("dot") is not None
scored = toy_scored


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli(argv: list[str]) -> int:
    """Parse and run a subcommand without main's error handling (errors raise)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


# ------------------------------------------------------------------ extract, render, compare, reuse


def test_cli_extract_render_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, seed in (("r1", 0), ("r2", 1)):
        save_scored(tmp_path / name, scored(name, seed))
    assert cli(["extract", str(tmp_path / "r1"), "--extract-method", "greedy", "--size", "25"]) == 0
    out = tmp_path / "r1" / "greedy-signed-25.circuit.json"
    assert read_circuit(out).extract_method == "greedy"
    assert "greedy-signed-25" in capsys.readouterr().out
    assert (
        cli(
            [
                "extract",
                str(tmp_path / "r2"),
                "--fraction",
                "0.2",
                "--by",
                "abs",
                "--json",
                "--out",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_edges"] == read_circuit(tmp_path / "b.json").n_edges
    assert cli(["compare", str(out), str(tmp_path / "b.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["edge_jaccard"] <= 1
    assert result["a"] == "greedy-signed-25"
    assert cli(["compare", str(out), str(out)]) == 0
    assert "edge_jaccard          1.0000" in capsys.readouterr().out
    assert cli(["render", str(out), "--format", "dot"]) == 0
    assert pydot.graph_from_dot_file(str(tmp_path / "r1" / "greedy-signed-25.circuit.dot"))
    if HAS_DOT:
        assert cli(["render", str(out), "--diff", str(tmp_path / "b.json")]) == 0
        assert (tmp_path / "r1" / "greedy-signed-25.circuit-vs-b.svg").is_file()
    assert (
        cli(
            [
                "extract",
                str(tmp_path / "r1"),
                "--size",
                "10",
                "--store",
                str(tmp_path / "g"),
                "--format",
                "dot",
            ]
        )
        == 0
    )
    assert (tmp_path / "g" / "org__toy" / "r1" / "top-n-signed-10" / "circuit.dot").is_file()
    with pytest.raises(InputError, match="not a scored-graph directory"):
        cli(["extract", str(tmp_path), "--size", "3"])
    with pytest.raises(InputError, match="needs a size"):
        cli(["extract", str(tmp_path / "r1")])


def test_extract_errors_exit_2_and_exclusive_sizes(capsys, tmp_path: Path) -> None:
    save_scored(tmp_path / "r1", scored("r1"))
    code, _, err = run(capsys, "extract", str(tmp_path / "r1"))
    assert code == 2
    assert err.startswith("circuits extract: error: ")
    assert "needs a size" in err
    with pytest.raises(SystemExit) as info:
        main(["extract", str(tmp_path / "r1"), "--size", "3", "--fraction", "0.1"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_render_without_graphviz_exits_1(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from circuits.draw import graphviz

    monkeypatch.setattr(graphviz.shutil, "which", lambda name: None)
    save_scored(tmp_path / "r1", scored("r1"))
    assert cli(["extract", str(tmp_path / "r1"), "--size", "10"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "render", str(tmp_path / "r1" / "top-n-signed-10.circuit.json"))
    assert code == 1
    assert "apt-get install graphviz" in out
    assert f"wrote {tmp_path / 'r1' / 'top-n-signed-10.circuit.dot'}" in out


REUSE = ["country_capital_city", "country_language", "country_continent"]


def test_reuse_command_on_tiny_llama(capsys, tmp_path: Path) -> None:
    store = tmp_path / "graphs"
    argv = [
        *REUSE,
        "--model",
        "tiny-llama",
        "--max-rank",
        "1000000000",
        "--max-pairs",
        "8",
        "--size",
        "20",
        "--store",
        str(store),
        "--quiet",
        "--no-cross",
    ]
    code, out, _ = run(capsys, "reuse", *argv, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["model"] == "tiny-llama"
    assert report["relations"] == REUSE
    assert report["cross_task"] == []
    assert report["settings"]["max_pairs"] == 8
    assert report["settings"]["size"] == 20
    for row in report["circuits"]:
        assert row["source"] == "scored"
        assert row["faithfulness"] is not None
        assert row["n_edges"] <= 20
    folder = Path(report["folder"])
    assert folder == store / "tiny-llama" / "reuse"
    assert (folder / "edge_jaccard.csv").is_file()
    assert not (folder / "cross_task.csv").exists()
    assert "tiny-llama/reuse" in json.loads((store / MANIFEST).read_text())["entries"]
    assert json.loads((folder / "report.json").read_text())["metric"] == "edge_jaccard"
    # the same sweep again, as text, clustered by another similarity: every graph comes from the store
    code, out, _ = run(capsys, "reuse", *argv, "--similarity", "head_share")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"tiny-llama: 3 relations -> {folder}"
    for relation, line in zip(REUSE, lines[1:4], strict=True):
        assert line.split()[0] == relation
        assert line.endswith("(stored)")
    assert "head_share matrix:" in out and "most similar: " in out and "head_share" in lines[-3]
    assert "clustering: " in out
    assert json.loads((folder / "report.json").read_text())["metric"] == "head_share"


def test_reuse_command_errors(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "reuse", "country_language", "--model", "tiny-llama", "--store", str(tmp_path))
    assert code == 2
    assert "at least 2 relations" in err
    for spelling in ("--similarity", "--metric"):  # --metric: the old spelling, for one version
        with pytest.raises(SystemExit) as info:
            main(["reuse", "a", "b", spelling, "cosine"])
        assert info.value.code == 2
        assert "invalid choice: 'cosine'" in capsys.readouterr().err


# ------------------------------------------------------------------ channels


def test_channels_command(capsys):
    parser = build_parser()

    def cmd_channels(args):
        return args.func(args)

    args = parser.parse_args(["channels", "--model", "tiny-gpt2", "--top", "3", "--json"])
    assert cmd_channels(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "tiny-gpt2"
    assert len(out["channels"]) == 3
    assert {"sender", "receiver", "kind", "z", "rank", "components"} <= set(out["channels"][0])
    assert out["n_senders"] > 0 and out["n_receivers"] > 0
    args = parser.parse_args(["channels", "--model", "tiny-gpt2", "--top", "2"])
    assert cmd_channels(args) == 0
    assert "sender" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # refused while parsing, before the model loads
        parser.parse_args(["channels", "--model", "tiny-gpt2", "--share", "2"])
    assert stop.value.code == 2
    assert "argument --share: must be a number in (0, 1], not '2'" in capsys.readouterr().err
    with pytest.raises(InputError, match="--causal"):
        cmd_channels(parser.parse_args(["channels", "--model", "tiny-gpt2", "--causal", "2"]))
