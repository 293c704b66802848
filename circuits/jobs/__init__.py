"""The jobs: extract/draw/compare stored circuits, the reuse sweep, channels, the main job and its stages.

Jobs tie the engine's stages together and write their files; they hold no
analysis logic (scoring lives in :mod:`circuits.attribution`, evaluation in
:mod:`circuits.evaluate`, the analyses in :mod:`circuits.mechanisms`).

Plain functions with keyword options (no argparse): the command line calls
them and a script can call them the same way.
"""

from circuits.jobs.channels import ChannelsReport, run_channels
from circuits.jobs.extraction import (
    compare_files,
    diagram_writer,
    extract_stored,
    load_circuit,
    render_circuit_file,
)
from circuits.jobs.reuse import SIMILARITIES, run_reuse

__all__ = [
    "SIMILARITIES",
    "ChannelsReport",
    "compare_files",
    "diagram_writer",
    "extract_stored",
    "load_circuit",
    "render_circuit_file",
    "run_channels",
    "run_reuse",
]
