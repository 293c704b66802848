"""Circuit-discovery graph engine for transformer language models.

The public surface, in the order of the data flow (model + relation -> prompt
pairs -> scored graph -> circuit -> evaluation / comparison -> store -> draw)::

    from circuits import load_model, load_relation, make_pairs, ScoreSettings, score_relation
    from circuits import heldout_evaluator, evaluate_graph, evaluate_scored, extract, compare, run_reuse
    from circuits import Circuit, ScoredGraph, GraphShape, save_scored, load_scored, Gallery
    from circuits import read_circuit, write_circuit
    from circuits import circuit_dot, render

Names are imported on first use, so ``import circuits`` is light: nothing
here loads torch until a name that runs a model is asked for. The
architecture (data flow, module map, vocabulary, sign convention, formulas)
is written down in ``circuits/ARCHITECTURE.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuits.attribution.score import score_pairs, score_relation
    from circuits.attribution.settings import ScoreSettings
    from circuits.circuit import Circuit
    from circuits.compare import reuse_matrix, shared_core
    from circuits.draw import circuit_dot, render
    from circuits.evaluate import Evaluator, evaluate_graph
    from circuits.evaluate.heldout import evaluate_scored, heldout_evaluator
    from circuits.graph import GraphShape, ScoredGraph
    from circuits.jobs import run_reuse
    from circuits.models import DEFAULT_MODEL, LoadedModel, list_models, load_model
    from circuits.relations import PairSet, Relation, load_relation, make_pairs
    from circuits.store import Gallery, load_scored, read_circuit, save_scored, write_circuit

# ``extract`` and ``compare`` name both a subpackage and its main function. Importing a
# subpackage binds its name on this package, so bind the functions eagerly (both modules are
# torch-free) and keep them out of the lazy table below.
from circuits.compare import compare
from circuits.extract import extract
from circuits.version import __version__

_WHERE = {
    "DEFAULT_MODEL": "circuits.models",
    "LoadedModel": "circuits.models",
    "list_models": "circuits.models",
    "load_model": "circuits.models",
    "Relation": "circuits.relations",
    "load_relation": "circuits.relations",
    "PairSet": "circuits.relations",
    "make_pairs": "circuits.relations",
    "GraphShape": "circuits.graph",
    "ScoredGraph": "circuits.graph",
    "ScoreSettings": "circuits.attribution",
    "score_pairs": "circuits.attribution",
    "score_relation": "circuits.attribution",
    "heldout_evaluator": "circuits.evaluate",
    "evaluate_scored": "circuits.evaluate",
    "run_reuse": "circuits.jobs",
    "Evaluator": "circuits.evaluate",
    "evaluate_graph": "circuits.evaluate",
    "Circuit": "circuits.circuit",
    "reuse_matrix": "circuits.compare",
    "shared_core": "circuits.compare",
    "circuit_dot": "circuits.draw",
    "role_dot": "circuits.draw",
    "render": "circuits.draw",
    "Gallery": "circuits.store",
    "load_scored": "circuits.store",
    "save_scored": "circuits.store",
    "read_circuit": "circuits.store",
    "write_circuit": "circuits.store",
}

__all__ = [
    "DEFAULT_MODEL",
    "Circuit",
    "Evaluator",
    "Gallery",
    "GraphShape",
    "LoadedModel",
    "PairSet",
    "Relation",
    "ScoreSettings",
    "ScoredGraph",
    "__version__",
    "circuit_dot",
    "compare",
    "evaluate_graph",
    "evaluate_scored",
    "extract",
    "heldout_evaluator",
    "list_models",
    "load_model",
    "load_relation",
    "load_scored",
    "make_pairs",
    "read_circuit",
    "render",
    "reuse_matrix",
    "role_dot",
    "run_reuse",
    "save_scored",
    "score_pairs",
    "score_relation",
    "shared_core",
    "write_circuit",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'circuits' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
