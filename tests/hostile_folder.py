"""A scored-graph folder as `circuits score` writes it, with the circuit `circuits extract` writes from it.

Shared by the hostile-file tests (``test_hostile_files``, ``test_hostile_readers``), which break copies of it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from conftest import toy_scored

from circuits.store import save_scored

METADATA = {
    "model": "tiny-gpt2",
    "relation": "country_capital_city",
    "score_method": "eap-ig",
    "metric": "logit-diff",
    "ablation": "counterfactual",
    "split_seed": 0,
    "seed": 0,
    "n_pairs_scoring": 5,
    "package_version": "0.4.0",
    "template": "The capital of {} is",
    "known_filter": {"max_rank": 1, "min_prob": 0.0, "heldout_fraction": 0.4},
}


def make_folder(root: Path) -> Path:
    """``root/g``: a scored graph of :data:`METADATA` and its circuit ``c`` (``c.circuit.json``) beside it."""
    from circuits.cli import main

    graph = toy_scored(seed=5)
    graph.metadata = dict(METADATA)
    save_scored(root / "g", graph)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["extract", str(root / "g"), "--size", "10", "--name", "c"]) == 0
    return root / "g"


def copy(made: Path, tmp: Path) -> Path:
    target = tmp / "g"
    shutil.copytree(made, target)
    return target


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # Python writes NaN as NaN, as a careless script would
