"""``circuits compare-models``: the main job on each model, then their comparison, stored with its figures.

Each model's job runs (or is read back: finished stages are reused) into the
same results folder, one model loaded at a time; the comparison
(:func:`circuits.compare.models.compare_models`) and its figures go to
``<out>/compare-models/``, staged and swapped into place whole. The comparison
is a :class:`~circuits.compare.model_record.ModelComparison`; the figures draw
its ``to_dict()``, which is ``comparison.json``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from circuits.compare.model_record import ModelComparison
from circuits.compare.models import COMPARISON, COMPARISON_FOLDER, compare_models
from circuits.draw.model_figures import curves_figure, depth_figure, knockout_figure, reuse_figure
from circuits.io import atomic_write_json, atomic_write_text, swap_in

__all__ = ["COMPARISON", "COMPARISON_FOLDER", "FIGURES", "run_comparison", "write_comparison"]

FIGURES: dict[str, Callable[[dict[str, Any]], str]] = {
    "curves.svg": curves_figure,
    "depth.svg": depth_figure,
    "knockout.svg": knockout_figure,
}
"""The figures written next to the comparison (``reuse.svg`` too, when both models have a reuse matrix)."""


def write_comparison(out: str | Path, comparison: ModelComparison) -> Path:
    """Store ``comparison`` and its figures in ``<out>/compare-models/`` (replaced whole);
    return the folder."""
    target = Path(out) / COMPARISON_FOLDER
    staging = target.parent / f".{target.name}.new-{uuid.uuid4().hex[:8]}"
    data = comparison.to_dict()
    try:
        for name, draw in FIGURES.items():
            atomic_write_text(staging / name, draw(data))
        if comparison.reuse is not None:
            atomic_write_text(staging / "reuse.svg", reuse_figure(data))
        atomic_write_json(staging / COMPARISON, data)
        swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def run_comparison(
    settings: Any,
    out: str | Path,
    models: list[str],
    *,
    load: Callable[[str], Any],
    progress: bool = True,
    n_perm: int = 1000,
) -> ModelComparison:
    """Run (or read back) the main job of ``settings`` on every model, compare them, store the comparison.

    ``load(name)`` returns a loaded model; each is released before the next loads.
    """
    from circuits.jobs.job import run_job

    for name in models:
        model = load(name)
        run_job(settings, out, model=model, progress=progress, report=False)
        del model
    comparison = compare_models(out, models, n_perm=n_perm, seed=settings.seed)
    comparison.folder = str(write_comparison(out, comparison))
    return comparison
