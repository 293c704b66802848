"""Drawing (torch-free): the DOT writers (circuits, diffs, channels; position-aware circuits in role lanes),
rendering through Graphviz, SVG heatmaps."""

from circuits.draw.dot import channels_dot, circuit_dot, diff_dot
from circuits.draw.graphviz import FORMATS, GRAPHVIZ_HINT, Rendered, render
from circuits.draw.heatmap import heatmap_svg
from circuits.draw.role_dot import role_dot

__all__ = [
    "FORMATS",
    "GRAPHVIZ_HINT",
    "Rendered",
    "channels_dot",
    "circuit_dot",
    "diff_dot",
    "heatmap_svg",
    "render",
    "role_dot",
]
