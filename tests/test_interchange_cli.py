"""EAP-IG / MIB graph files on the command line (`circuits export`, `import`), a gallery circuit, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from circuits.circuit import Circuit
from circuits.graph import GraphShape, ScoredGraph
from circuits.store import load_scored, read_circuit, save_scored, write_circuit
from circuits.store.mib import IMPORTED_CIRCUIT, export_mib, load_graph_or_circuit
from circuits.store.mib_format import mib_n_edges
from circuits.store.mib_json import from_mib_json, read_mib_json, to_mib_json

GALLERY = Path(__file__).resolve().parent.parent / "graphs" / "smollm2-135m" / "country_capital_city"


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama"])
def scored(request):
    """A scored graph of each tiny model: multi-head GPT-2 and grouped-query Llama (4 heads, 2 kv heads)."""
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings
    from circuits.models import load_model

    settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    graph, _ = score_relation(load_model(request.param), "country_capital_city", settings, progress=False)
    return graph


# ------------------------------------------------------------------ (g) the command line
def test_export_and_import_commands(scored, capsys, tmp_path):
    save_scored(tmp_path / "scored", scored)
    code, out, _ = run_cli(
        capsys, "export", tmp_path / "scored", "--format", "mib-json", "--out", tmp_path / "g.json"
    )
    assert code == 0 and f"wrote {tmp_path / 'g.json'} (mib-json: " in out
    code, out, _ = run_cli(capsys, "import", tmp_path / "g.json", "--out", tmp_path / "back")
    assert code == 0 and "written by this engine" in out and out.count("wrote") == 1
    back = load_scored(tmp_path / "back")
    assert np.array_equal(back.scores, scored.scores)
    assert back.metadata["imported_from"] == {"path": str(tmp_path / "g.json"), "format": "mib-json"}
    assert {k: v for k, v in back.metadata.items() if k != "imported_from"} == scored.metadata

    circuit = Circuit.from_mask(
        scored, scored.top_mask(9, by="signed"), extract_method="top-n", params={"n": 9, "by": "signed"}
    )
    write_circuit(circuit, tmp_path / "c.circuit.json")
    code, out, _ = run_cli(
        capsys,
        "export",
        tmp_path / "c.circuit.json",
        "--format",
        "mib-pt",
        "--out",
        tmp_path / "c.pt",
        "--scored",
        tmp_path / "scored",
        "--json",
    )
    assert code == 0 and json.loads(out)[0]["in_graph"] == sum(
        scored.shape.group if r.endswith(("<k>", "<v>")) else 1 for _, r in circuit.edges
    )
    code, out, _ = run_cli(capsys, "import", tmp_path / "c.pt", "--out", tmp_path / "c", "--json")
    report = json.loads(out)
    assert code == 0 and report["circuit"] == str(tmp_path / "c" / IMPORTED_CIRCUIT)
    assert read_circuit(report["circuit"]) == circuit
    assert np.array_equal(load_scored(tmp_path / "c").scores, scored.scores)

    code, out, _ = run_cli(
        capsys,
        "export",
        tmp_path / "scored",
        "--format",
        "mib-json",
        "--sizes",
        "mib",
        "--by",
        "signed",
        "--out",
        tmp_path / "ten",
        "--stem",
        "task_model",
    )
    assert code == 0 and out.count("wrote") == 10 and (tmp_path / "ten" / "task_model_0.1.json").is_file()


def test_command_errors_exit_2_with_one_line(capsys, tmp_path):
    (tmp_path / "bad.json").write_text('{"cfg": {}, "nodes": {}, "edges": {}}')
    code, _, err = run_cli(capsys, "import", tmp_path / "bad.json", "--out", tmp_path / "o")
    assert code == 2 and "bad.json: cfg has no 'n_layers'" in err and err.count("\n") == 1
    (tmp_path / "g.txt").write_text("{}")
    code, _, err = run_cli(capsys, "import", tmp_path / "g.txt", "--out", tmp_path / "o")
    assert code == 2 and "cannot tell the format from the suffix '.txt'" in err
    code, _, err = run_cli(
        capsys, "export", tmp_path / "nothing", "--format", "mib-pt", "--out", tmp_path / "x.pt"
    )
    assert code == 2 and "no such file or folder" in err


# ------------------------------------------------------------------ (h) a gallery circuit (no model)
@pytest.mark.skipif(
    not (GALLERY / "top-n-signed-150" / "circuit.json").is_file(), reason="gallery not present"
)
def test_a_gallery_circuit_exports_and_loads_back_identically(tmp_path):
    circuit = load_graph_or_circuit(GALLERY / "top-n-signed-150")
    assert isinstance(circuit, Circuit) and circuit.shape == GraphShape(30, 9, 3)
    data = to_mib_json(circuit)
    assert data["cfg"]["d_model"] == 576 and data["cfg"]["n_key_value_heads"] == 3
    assert len(data["edges"]) == mib_n_edges(circuit.shape) == 123211
    assert from_mib_json(json.loads(json.dumps(data))).circuit == circuit
    rows = export_mib(GALLERY / "top-n-signed-150", out=tmp_path / "c.json", scored=GALLERY)
    back = read_mib_json(rows[0]["path"])
    assert back.circuit == circuit
    assert np.array_equal(back.graph.scores, load_scored(GALLERY / "scored").scores)


def test_json_export_and_import_do_not_import_torch(tmp_path):
    shape = GraphShape(2, 4, 2)
    save_scored(
        tmp_path / "s", ScoredGraph(shape, np.ones((shape.n_senders, shape.n_receivers)), {"model": "m"})
    )
    code = textwrap.dedent(f"""
        import json, sys
        from circuits.cli import main
        assert main(["export", {str(tmp_path / "s")!r}, "--format", "mib-json",
                     "--out", {str(tmp_path / "ten")!r}, "--sizes", "mib"]) == 0
        assert main(["import", {str(tmp_path / "ten" / "s_1.json")!r}, "--out", {str(tmp_path / "b")!r}]) == 0
        print(json.dumps({{"torch": "torch" in sys.modules}}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"torch": False}
