"""A self-contained static HTML report of stored results (torch-free): ``circuits report DIR``.

The report reads a results folder in the gallery layout (scored graphs,
circuits, evaluations, mechanism records, reuse sweeps, channels; see
:mod:`circuits.report.collect`) and writes plain HTML pages that refer to the
stored SVG figures by relative links:

- ``index.html``: per model one row per relation (pairs, circuit size,
  held-out faithfulness and CPR with their 95% intervals) and the job summary;
- ``<model>/<relation>.html``: key numbers, the circuit diagram (tooltips on
  nodes and edges), the faithfulness curve, the mechanism figures;
- ``<model>/reuse.html``: reuse heatmaps with the dendrogram, noise ceilings,
  most and least similar pairs, cross-task faithfulness, the shared core,
  suppression and the causal reuse test;
- ``<model>/channels.html``: the channels' validation and overlay.

Modules: :mod:`~circuits.report.collect` and :mod:`~circuits.report.across`
(reading), :mod:`~circuits.report.html` and :mod:`~circuits.report.figures`
(escaping, links, tables, figures, the page skeleton),
:mod:`~circuits.report.pages` and :mod:`~circuits.report.model_pages` (the
pages), :mod:`~circuits.report.build` (writing).
"""

from circuits.report.build import build_report

__all__ = ["build_report"]
