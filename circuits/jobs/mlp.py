"""The MLP decomposition job: a relation's known-fact prompts through :mod:`circuits.mechanisms.mlp_parts`.

Like the other mechanism jobs (:mod:`circuits.jobs.mechanisms`) it loads
the relation (bundled name, LRE file or CSV), keeps the facts the model knows,
runs the analysis and, given ``out`` or ``store``, writes ``mlp.json`` (the
record, intervals as value/low/high) and ``mlp.svg`` (its figure).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from circuits.draw.mlp_figures import mlp_figure
from circuits.jobs.mechanisms import PromptChoice, run_analysis
from circuits.mechanisms.lens import Prompts
from circuits.mechanisms.mlp_parts import MLPDecomposition, mlp_decomposition
from circuits.mechanisms.mlp_split import check_layers, check_position
from circuits.relations.pairs import PairSet
from circuits.relations.schema import Relation
from circuits.uncertainty import DEFAULT_BOOT

__all__ = ["run_mlp"]


def run_mlp(
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    layers: Sequence[int] | None = None,
    position: str = "last",
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[MLPDecomposition, dict[str, Any], list[Path]]:
    """Decompose the MLPs of ``layers`` (all by default) at ``position``; the result, its record, the files.

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> result, record, files = run_mlp(model, "country_capital_city",
    ...     PromptChoice(max_pairs=6, max_rank=10**9), layers=[2], progress=False)
    >>> [d.layer for d in result.layers], record["analysis"], result.residual < 1e-4, files
    ([2], 'mlp', True, [])
    """
    check_position(position)  # before the prompts are made: a wrong option fails at once
    chosen = check_layers(model, layers)

    def analyse(prompts: Prompts, pairs: PairSet, common: dict[str, Any]) -> MLPDecomposition:
        return mlp_decomposition(
            model, prompts, layers=chosen, position=position, n_boot=n_boot, progress=progress, **common
        )

    return run_analysis(model, relation, choice, "mlp", mlp_figure, out, store, analyse)
