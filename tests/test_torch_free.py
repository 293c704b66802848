"""The torch-free promise: the graph, circuit, store, drawing and command-line layers never import torch.

Each check runs in a fresh interpreter, since this test process has imported torch long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

TORCH_FREE = [
    "circuits",
    "circuits.cli",
    "circuits.graph",
    "circuits.circuit",
    "circuits.extract",
    "circuits.compare",
    "circuits.compare.noise",
    "circuits.compare.ceilings",
    "circuits.compare.models",
    "circuits.draw.model_figures",
    "circuits.report.comparison_page",
    "circuits.extract.masks",
    "circuits.store",
    "circuits.store.circuits",
    "circuits.relations.pair_set",
    "circuits.draw",
    "circuits.relations",
    "circuits.relations.schema",
    "circuits.io",
    "circuits.vocab",
    "circuits.progress",
    "circuits.models",
    "circuits.models.catalog",
    "circuits.uncertainty",
    "circuits.mechanisms",
    "circuits.relations.roles",
    "circuits.mechanisms.attributes",
    "circuits.draw.figures",
    "circuits.draw.evaluation_figures",
    "circuits.report",
    "circuits.cli.job",
    "circuits.cli.report",
    "circuits.draw.plotting",
    "circuits.cli.analysis",
    "circuits.registry",
    "circuits.records",
    "circuits.draw.attribution_figures",
    "circuits.draw.mlp_figures",
    "circuits.records.mlp",
    "circuits.cli.interventions",
    "circuits.draw.intervention_figures",
    "circuits.mechanisms.edits",
    "circuits.store.mib",
    "circuits.store.mib_format",
    "circuits.store.mib_kv",
    "circuits.store.mib_graph",
    "circuits.store.mib_json",
    "circuits.store.mib_pt",
    "circuits.cli.interchange",
    "circuits.sizing",
]


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line of output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", TORCH_FREE)
def test_importing_does_not_import_torch(module):
    result = run_python(f"""
        import importlib, json, sys
        importlib.import_module({module!r})
        print(json.dumps({{"torch": "torch" in sys.modules}}))
    """)
    assert result == {"torch": False}


def test_all_torch_free_modules_together_and_their_public_names():
    result = run_python(f"""
        import importlib, json, sys
        for name in {TORCH_FREE!r}:
            importlib.import_module(name)
        import circuits
        from circuits.models import DEFAULT_MODEL, list_models
        from circuits.relations import load_relation
        names = [circuits.Circuit, circuits.GraphShape, circuits.ScoredGraph, circuits.extract,
                 circuits.compare, circuits.circuit_dot, circuits.render, circuits.Gallery,
                 circuits.load_scored, circuits.save_scored, circuits.load_relation, list_models()]
        rel = load_relation("country_capital_city")
        print(json.dumps({{"torch": "torch" in sys.modules, "facts": len(rel.facts) > 0}}))
    """)
    assert result == {"torch": False, "facts": True}


def test_help_models_and_relations_commands_do_not_import_torch():
    result = run_python("""
        import contextlib, io, json, sys
        from circuits.cli import main

        seen = {}
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main(["--help"])
            except SystemExit as exit_:
                seen["help_exit"] = exit_.code
            seen["after_help"] = "torch" in sys.modules
            seen["models_exit"] = main(["models"])
            seen["after_models"] = "torch" in sys.modules
            seen["models_json_exit"] = main(["models", "--json"])
            seen["relations_exit"] = main(["relations", "--json"])
            seen["after_relations"] = "torch" in sys.modules
        seen["printed"] = "usage: circuits" in out.getvalue() and "smollm2-135m" in out.getvalue()
        print(json.dumps(seen))
    """)
    assert result == {
        "help_exit": 0,
        "after_help": False,
        "models_exit": 0,
        "after_models": False,
        "models_json_exit": 0,
        "relations_exit": 0,
        "after_relations": False,
        "printed": True,
    }


def test_names_that_run_a_model_import_torch_on_first_use():
    result = run_python("""
        import json, sys
        import circuits
        before = "torch" in sys.modules
        load_model = circuits.load_model
        print(json.dumps({"before": before, "after": "torch" in sys.modules,
                          "callable": callable(load_model)}))
    """)
    assert result == {"before": False, "after": True, "callable": True}
