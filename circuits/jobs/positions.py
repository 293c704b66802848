"""A relation's position-aware circuit, set against summed circuits of the same size.

:func:`run_positions` scores the relation with EAP-IG split by position role,
extracts the smallest (edge, role) circuit reaching a target faithfulness on
the scoring pairs, measures it on the held-out pairs, and tests the claim
that position-aware circuits are smaller at equal faithfulness two ways:
the smallest summed circuit reaching the same target on the same graph (its
size in edges against the unit count), and at fixed sizes (0.02% to 2% of
all units) the pruned top-n circuit of ``n`` units against the pruned top-n
summed circuit of ``n`` edges, both on the held-out pairs, with 95%
bootstrap intervals of each and of their paired difference. It also
profiles which role carries the circuit's score, layer by layer
(:func:`~circuits.compare.role_profile.role_profile`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from circuits.attribution.score import score_relation
from circuits.attribution.settings import ScoreSettings
from circuits.circuit import Circuit
from circuits.compare.role_profile import role_profile
from circuits.evaluate.heldout import heldout_evaluator
from circuits.extract import minimal_circuit, prune, pruned_top_n, top_n
from circuits.jobs.extraction import diagram_writer
from circuits.models import LoadedModel
from circuits.store import Gallery, circuit_name
from circuits.uncertainty import DEFAULT_BOOT, percentile_interval
from circuits.vocab import InputError

__all__ = ["POSITIONS", "UNIT_FRACTIONS", "run_positions"]

POSITIONS = "positions"
"""The gallery folder (beside a relation's ``scored/``) that holds the position-aware record."""

UNIT_FRACTIONS = (0.0002, 0.0005, 0.001, 0.005, 0.01, 0.02)
"""Circuit sizes, as fractions of all (edge, role) units, at which roles and sums are compared."""


def run_positions(
    model: LoadedModel,
    relation: str | Path,
    settings: ScoreSettings,
    *,
    target: float = 0.8,
    max_units: int = 1000,
    fractions: tuple[float, ...] = UNIT_FRACTIONS,
    n_boot: int = DEFAULT_BOOT,
    store: str | Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], Circuit, dict[str, Path]]:
    """Score by role, extract, evaluate and compare one relation's position-aware circuit.

    Parameters
    ----------
    model : LoadedModel
        The model.
    relation : str or Path
        A bundled relation or a relation file.
    settings : ScoreSettings
        How to score (``positions`` is set to ``"roles"`` here).
    target : float
        The circuit is the smallest top-n unit circuit reaching this
        faithfulness on the scoring pairs, ...
    max_units : int
        ... of at most this many units; when none does, the top ``max_units``
        units, recorded with ``target_reached: false``.
    fractions : tuple of float
        Sizes (fractions of all units) of the roles-versus-summed comparison.
    n_boot : int
        Bootstrap resamples over the held-out pairs for every interval.
    store : str or Path, optional
        A gallery: the circuit (with its role-lane diagram) and
        ``positions/positions.json`` and ``positions.svg`` go there.
    progress : bool
        Progress bar of the scoring.

    Returns
    -------
    record : dict
        The relation, counts, the circuit's size, role counts and held-out
        faithfulness, the comparison rows and the role profile.
    circuit : Circuit
        The position-aware circuit.
    files : dict
        Where things were written (``circuit`` folder, ``record`` file), empty without ``store``.
    """
    settings = dataclasses.replace(settings, positions="roles")
    graph, pairs = score_relation(model, relation, settings, progress=progress)
    search = heldout_evaluator(model, graph, pairs, split="scoring")
    heldout = heldout_evaluator(model, graph, pairs)
    circuit, reached = _smallest(graph, search, target, max_units, "roles")
    summed, summed_reached = _smallest(graph, search, target, max_units, "summed")
    weights = heldout.resample_weights(n_boot, settings.seed) if n_boot else None
    runs = [heldout.run_mask(c.to_unit_mask()) for c in (circuit, summed)]
    circuit.faithfulness = runs[0].faithfulness
    circuit.name = circuit_name(circuit)
    faith, summed_faith = _interval(heldout, runs, weights)
    rows = [_compare(graph, heldout, weights, f) for f in fractions]
    record = {
        "relation": graph.metadata["relation"],
        "model": model.name,
        "n_edges_graph": graph.n_edges,
        "n_units_graph": graph.n_units("roles"),
        "n_scoring": len(pairs.scoring),
        "n_heldout": len(pairs.heldout),
        "seconds_scoring": graph.metadata["seconds"],
        "target": target,
        "max_units": max_units,
        "target_reached": reached,
        "circuit": {
            **circuit.summary(),
            "role_counts": circuit.role_counts(),
            "faithfulness_interval": faith,
            "search": circuit.params.get("search"),
        },
        "summed_circuit": {
            "n_edges": summed.n_edges,
            "target_reached": summed_reached,
            "faithfulness_interval": summed_faith,
            "search": summed.params.get("search"),
        },
        "comparison": rows,
        "profile": role_profile(circuit),
        "n_boot": n_boot,
        "seed": settings.seed,
    }
    files: dict[str, Path] = {}
    if store is not None:
        files = _save(Gallery(store), record, circuit)
    return record, circuit, files


def _smallest(graph: Any, search: Any, target: float, cap: int, positions: str) -> tuple[Circuit, bool]:
    """The minimal circuit (units or edges) reaching ``target`` on the search pairs, else the top ``cap``."""
    try:
        circuit = minimal_circuit(graph, search, target, max_size=cap, positions=positions)
    except InputError:
        return prune(top_n(graph, cap, positions=positions)), False
    circuit.params = {
        **circuit.params,
        "search_faithfulness": circuit.faithfulness,
        "search_split": "scoring",
    }
    return circuit, True


def _interval(evaluator: Any, runs: list[Any], weights: np.ndarray | None) -> list[dict[str, float]]:
    """Each run's held-out faithfulness with its 95% bootstrap interval (nan bounds without resamples)."""
    values = [evaluator.normalize(r.metric) for r in runs]
    if weights is None:
        return [{"value": v, "low": float("nan"), "high": float("nan")} for v in values]
    boot = evaluator.boot_faithfulness(runs, weights)
    return [percentile_interval(v, boot[:, i]).as_dict() for i, v in enumerate(values)]


def _compare(graph: Any, evaluator: Any, weights: np.ndarray | None, fraction: float) -> dict[str, Any]:
    """Roles against sums at one size: ``n`` units against ``n`` edges, and their paired difference."""
    n = max(1, round(fraction * graph.n_units("roles")))
    roles = pruned_top_n(graph, n, positions="roles")
    summed = pruned_top_n(graph, n)
    runs = [evaluator.run_mask(roles.to_unit_mask()), evaluator.run_mask(summed.to_mask())]
    roles_f, summed_f = _interval(evaluator, runs, weights)
    diff = {"value": roles_f["value"] - summed_f["value"], "low": float("nan"), "high": float("nan")}
    if weights is not None:
        boot = evaluator.boot_faithfulness(runs, weights)
        diff = percentile_interval(diff["value"], boot[:, 0] - boot[:, 1]).as_dict()
    return {
        "fraction": fraction,
        "n": n,
        "roles_units": roles.n_units,
        "roles_edges": roles.n_edges,
        "summed_edges": summed.n_edges,
        "roles": roles_f,
        "summed": summed_f,
        "difference": diff,
    }


def _save(gallery: Gallery, record: dict[str, Any], circuit: Circuit) -> dict[str, Path]:
    from circuits.draw.position_figures import positions_figure
    from circuits.io import record_json

    where, message = gallery.save_circuit(circuit, draw=diagram_writer(circuit))
    record["circuit"]["folder"] = where.name
    if message:
        record["diagram_note"] = message
    files = {"positions.json": record_json(record), "positions.svg": positions_figure(record)}
    folder = gallery.save_files(
        record["model"], POSITIONS, files, {"circuit": circuit.name}, relation=record["relation"]
    )
    return {"circuit": where, "record": folder / "positions.json"}
