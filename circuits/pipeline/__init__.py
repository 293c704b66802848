"""The jobs: score a relation, evaluate, extract/draw/compare circuits, the reuse sweep, channels.

Plain functions with keyword options (no argparse): the command line calls
them and a script can call them the same way.
"""

from circuits.pipeline.channels import ChannelsReport, run_channels
from circuits.pipeline.evaluation import evaluate_scored, heldout_evaluator
from circuits.pipeline.extraction import (
    compare_files,
    diagram_writer,
    extract_stored,
    load_circuit,
    render_circuit_file,
)
from circuits.pipeline.reuse import SIMILARITIES, run_reuse
from circuits.pipeline.score import ScoreSettings, score_pairs, score_relation

__all__ = [
    "SIMILARITIES",
    "ChannelsReport",
    "ScoreSettings",
    "compare_files",
    "diagram_writer",
    "evaluate_scored",
    "extract_stored",
    "heldout_evaluator",
    "load_circuit",
    "render_circuit_file",
    "run_channels",
    "run_reuse",
    "score_pairs",
    "score_relation",
]
