"""Hostile and careless files on the command line: exit status 2 and one line naming the file, no traceback.

Each row of the table breaks one file of a scored-graph folder, a circuit
written by ``circuits extract`` or a relation CSV, runs the command that reads
it in-process and checks what the user sees. What such files must not do even
when they load is in ``test_hostile_readers``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hostile_folder import copy, edit_json, make_folder

from circuits.store import META, SCORES


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """The folder of :func:`hostile_folder.make_folder`, made once for this module."""
    return make_folder(tmp_path_factory.mktemp("made"))


def truncated(g: Path) -> Path:
    (g / SCORES).write_bytes((g / SCORES).read_bytes()[:200])
    return g / SCORES


def random_bytes(g: Path) -> Path:
    (g / SCORES).write_bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes())
    return g / SCORES


def float64_scores(g: Path) -> Path:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(g / SCORES))
    save_file({**tensors, "edge_scores": tensors["edge_scores"].astype(np.float64)}, str(g / SCORES))
    return g / SCORES


def nan_edge_score(g: Path) -> Path:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(g / SCORES))
    tensors["edge_scores"][7] = np.nan
    save_file(tensors, str(g / SCORES))
    return g / SCORES


def graph_json_list(g: Path) -> Path:
    (g / META).write_text("[1, 2]")
    return g / META


def graph_json_missing_keys(g: Path) -> Path:
    edit_json(g / META, lambda d: [d.pop(k) for k in ("metric", "split_seed")])
    return g / META


def graph_json_shape_only(g: Path) -> Path:
    edit_json(g / META, lambda d: [d.pop(k) for k in list(d) if k != "shape"])
    return g / META


def graph_json_nan_literal(g: Path) -> Path:
    edit_json(g / META, lambda d: d.update(seconds=float("nan")))
    return g / META


def graph_json_huge_shape(g: Path) -> Path:
    edit_json(g / META, lambda d: d["shape"].update(n_layers=10**7))
    return g / META


def circuit_edit(change: Callable[[dict], object]) -> Callable[[Path], Path]:
    def make(g: Path) -> Path:
        edit_json(g / "c.circuit.json", change)
        return g / "c.circuit.json"

    return make


def circuit_text(old: str, new: str) -> Callable[[Path], Path]:
    def make(g: Path) -> Path:
        path = g / "c.circuit.json"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
        return path

    return make


def csv_file(content: bytes) -> Callable[[Path], Path]:
    def make(g: Path) -> Path:
        (g / "facts.csv").write_bytes(content)
        return g / "facts.csv"

    return make


def first_edge(key: str, value: object) -> Callable[[dict], object]:
    return lambda d: d["edges"][0].update({key: value})


PROMPTS = ["prompts", "FILE", "--template", "The capital of {} is", "--model", "tiny-llama"]

CASES = {
    # name: (command line, how the file is broken, what the message says)
    "evaluate-truncated-safetensors": (
        ["evaluate", "DIR", "--quiet"],
        truncated,
        "not a readable safetensors",
    ),
    "extract-truncated-safetensors": (
        ["extract", "DIR", "--size", "5"],
        truncated,
        "not a readable safetensors",
    ),
    "evaluate-random-safetensors": (
        ["evaluate", "DIR", "--quiet"],
        random_bytes,
        "not a readable safetensors",
    ),
    "extract-float64-scores": (["extract", "DIR", "--size", "5"], float64_scores, "values of float64"),
    "extract-nan-edge-score": (["extract", "DIR", "--size", "5"], nan_edge_score, "NaN or infinite"),
    "extract-graph-json-list": (["extract", "DIR", "--size", "5"], graph_json_list, "must be an object"),
    "evaluate-graph-json-missing-keys": (
        ["evaluate", "DIR", "--quiet"],
        graph_json_missing_keys,
        "field 'metric' is missing",
    ),
    "evaluate-graph-json-shape-only": (
        ["evaluate", "DIR", "--quiet"],
        graph_json_shape_only,
        "field 'model' is missing",
    ),
    "extract-graph-json-nan": (["extract", "DIR", "--size", "5"], graph_json_nan_literal, "'seconds' is NaN"),
    "extract-graph-json-huge-shape": (
        ["extract", "DIR", "--size", "5"],
        graph_json_huge_shape,
        "n_layers is 10000000; valid: 1 to 1024",
    ),
    "extract-graph-json-nested-deep": (
        ["extract", "DIR", "--size", "5"],
        lambda g: (g / META).write_text("[" * 10**5 + "]" * 10**5) and g / META,
        "nested too deeply",
    ),
    "render-integer-of-5000-digits": (
        ["render", "FILE", "--format", "dot"],
        circuit_text('"faithfulness": null', '"faithfulness": ' + "9" * 5000),
        "malformed JSON: Exceeds the limit",
    ),
    "render-score-string": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(first_edge("score", "-0.5")),
        "'score' is '-0.5'; valid: a finite number",
    ),
    "render-score-nan": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(first_edge("score", float("nan"))),
        "): 'score' is NaN; numbers must be finite",
    ),
    "render-score-bool": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(first_edge("score", True)),
        "'score' is True",
    ),
    "render-n-layers-huge": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(lambda d: d["graph"]["shape"].update(n_layers=10**7)),
        "n_layers is 10000000; valid: 1 to 1024",
    ),
    "render-layer-out-of-range": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(first_edge("source", "a5.h0")),
        "names layer 5; the graph has layers 0 to 1",
    ),
    "render-nodes-not-a-list": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(lambda d: d.update(nodes=3)),
        "'nodes' must be a list",
    ),
    "render-graph-not-an-object": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(lambda d: d.update(graph="x")),
        "'graph' must be an object",
    ),
    "render-faithfulness-infinite": (
        ["render", "FILE", "--format", "dot"],
        circuit_edit(lambda d: d["graph"].update(faithfulness=float("inf"))),
        "field 'graph.faithfulness' is Infinity",
    ),
    "prompts-non-utf8-csv": (
        PROMPTS,
        csv_file(b"subject,object\nFr\xe9nce,Paris\n"),
        "line 2 is not UTF-8 (byte 17 of the file is 0xe9); re-save it as UTF-8",
    ),
    "prompts-bom-csv-header-only": (
        PROMPTS,
        csv_file("\ufeffsubject,object\n".encode()),
        "the relation has no facts",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file_exits_2_with_one_line_naming_it(made: Path, tmp_path: Path, capsys, case: str) -> None:
    argv, breaks, says = CASES[case]
    folder = copy(made, tmp_path)
    bad = breaks(folder)
    code, _, err = run_cli(capsys, *(str({"DIR": folder, "FILE": bad}.get(a, a)) for a in argv))
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"circuits {argv[0]}: error: "), err
    assert str(bad) in lines[0], err
    assert says in lines[0], err
