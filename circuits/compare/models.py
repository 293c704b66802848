"""Comparing models: the same relations' circuits, mechanisms and reuse on two (or more) models (torch-free).

Reads what the main job stored for each model under one results folder
(``<root>/<model>/job.json`` and the files it names) and sets, for every
relation all the models have results for:

- the **faithfulness curve** of each model's graph (top-n edges by signed
  score, as a share of its edges) and the **circuit at the job's target**
  (F = 0.8 by default): its edges,
  their share of the model's graph, its held-out faithfulness with interval;
- the **depth profile** of each circuit: the share of its total ``|score|``
  per tenth of relative depth. An edge sits midway between its two ends, the
  input at depth 0, a layer-``l`` head or MLP at ``(l + 0.5) / L``, the logits
  at 1, so models of different depth compare on one axis; ``overlap`` is
  ``1 - ½ Σ |p - q|`` of two profiles (1: the same profile);
- the **mechanism curves**: attention knockout's strongest effect per source
  role and where it lies (relative depth of its window), and the DLA roles
  (how many heads read mostly the subject, the relation, or both), read
  through their typed records (:mod:`circuits.records`);
- the **reuse matrices** (edge Jaccard between the relations' equal-size
  circuits) over the shared relations: the Spearman correlation of their
  off-diagonal entries, with a permutation p-value (the relation labels of
  one matrix shuffled), and whether the same pair of relations merges first.

The comparison is a :class:`~circuits.compare.model_record.ModelComparison`
(its ``to_dict()`` is ``comparison.json``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from circuits.compare.model_record import ModelCircuit, ModelComparison, RelationComparison, ReuseAgreement
from circuits.io import read_json
from circuits.records.dla import DLARecord
from circuits.records.knockout import KnockoutRecord
from circuits.vocab import InputError, parse_node

__all__ = [
    "COMPARISON",
    "COMPARISON_FOLDER",
    "DEPTH_BINS",
    "ModelComparison",
    "ReuseAgreement",
    "compare_models",
    "compare_reuse",
    "depth_profile",
    "read_model_results",
]

DEPTH_BINS = 10
COMPARISON_FOLDER = "compare-models"
"""Where a results folder keeps its comparison across models (``comparison.json`` and figures)."""
COMPARISON = "comparison.json"


def _read(path: Path, what: str) -> Any:
    data = read_json(path, what=f"{what} (`circuits run --model M` or `circuits compare-models` makes it)")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _depth(node: str, n_layers: int) -> float:
    kind, layer, _, _ = parse_node(node)
    if kind == "input":
        return 0.0
    if kind == "logits" or layer is None:
        return 1.0
    return (layer + 0.5) / n_layers


def depth_profile(edges: list[dict[str, Any]], n_layers: int, bins: int = DEPTH_BINS) -> list[float]:
    """Share of the edges' total ``|score|`` per ``1 / bins`` of relative depth (see the module docstring).

    >>> depth_profile([{"source": "input", "target": "logits", "score": -2.0},
    ...                {"source": "a0.h1", "target": "m0", "score": 1.0}], n_layers=2, bins=4)
    [0.0, 0.3333333333333333, 0.6666666666666666, 0.0]
    """
    weights = np.zeros(bins)
    for edge in edges:
        mid = (_depth(edge["source"], n_layers) + _depth(edge["target"], n_layers)) / 2
        weights[min(int(mid * bins), bins - 1)] += abs(float(edge.get("score") or 0.0))
    total = weights.sum()
    return (weights / total).tolist() if total > 0 else weights.tolist()


def _overlap(p: list[float], q: list[float]) -> float:
    return float(1.0 - 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def _component(value: Any, job: Path, field: str) -> str:
    """``value`` as one path component (a relation or circuit name from a job summary), else an error."""
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value:
        raise InputError(f"{job}: {field} {value!r} is not a relation or circuit name (one folder name)")
    return value


def _relation(home: Path, row: dict[str, Any]) -> ModelCircuit:
    job = home / "job.json"
    if not isinstance(row, dict):
        raise InputError(f"{job}: a 'relations' entry is {type(row).__name__}, not an object")
    folder = home / _component(row.get("relation"), job, "relation")
    row = {**row, "circuit": _component(row.get("circuit"), job, "circuit")}
    try:
        return ModelCircuit.from_dict(_relation_files(folder, row))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(
            f"{folder}: a stored record lacks a field the comparison reads ({error!r})"
        ) from None


def _relation_files(folder: Path, row: dict[str, Any]) -> dict[str, Any]:
    path = folder / row["circuit"] / "circuit.json"
    circuit = _read(path, "circuit")
    try:
        n_layers = int(circuit["graph"]["shape"]["n_layers"])
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{path}: graph.shape.n_layers is missing; not a circuit written by this tool"
        ) from None
    evaluation = _read(folder / "evaluation" / "evaluation.json", "evaluation record")
    out: dict[str, Any] = {
        "n_edges": row["n_edges"],
        "target_reached": row.get("target_reached"),
        "faithfulness": row.get("faithfulness"),
        "n_known": row.get("n_known"),
        "n_facts": row.get("n_facts"),
        "graph_edges": evaluation.get("n_edges"),
        "fractions": evaluation.get("fractions"),
        "curve": evaluation.get("signed"),
        "n_layers": n_layers,
        "depth": depth_profile(circuit.get("edges", []), n_layers),
    }
    if out["graph_edges"]:
        out["share"] = row["n_edges"] / out["graph_edges"]
    mech = folder / "mechanisms"
    if (mech / "knockout.json").is_file():
        path = mech / "knockout.json"
        knock = KnockoutRecord.from_dict(_read(path, "knockout record"), source=str(path))
        window, layers = knock.window, knock.n_layers or n_layers
        out["knockout"] = {}
        for c in knock.curves:
            if not c.effect:
                continue
            start, effect = c.strongest()
            out["knockout"][c.source] = {
                "effect": effect.as_dict(),
                "depth": (start + window / 2) / layers,
                "curve": [e.as_dict()["value"] for e in c.effect],
                "starts": [s / layers for s in c.starts],
            }
    if (mech / "dla.json").is_file():
        path = mech / "dla.json"
        out["dla_counts"] = DLARecord.from_dict(_read(path, "DLA record"), source=str(path)).counts()
    return out


def read_model_results(root: str | Path, model: str) -> dict[str, Any]:
    """What the main job stored for ``model`` under ``root``: per relation, and the reuse matrix.

    ``relations`` maps each relation to its :class:`~circuits.compare.model_record.ModelCircuit`.
    """
    home = Path(root) / model
    job = _read(home / "job.json", "job summary")
    rows = job.get("relations", [])
    if not isinstance(rows, list):
        raise InputError(f"{home / 'job.json'}: 'relations' is {type(rows).__name__}, not a list")
    relations = {row["relation"]: _relation(home, row) for row in rows}
    reuse_path = home / "reuse" / "report.json"
    matrix = None
    if reuse_path.is_file():
        lines = str(_read(reuse_path, "reuse report").get("matrix_csv", "")).strip().splitlines()
        if lines:
            names = lines[0].split(",")[1:]
            values = [[float(x) for x in line.split(",")[1:]] for line in lines[1:]]
            matrix = {"names": names, "values": values}
    target = (job.get("settings") or {}).get("target_faithfulness")
    return {"model": model, "relations": relations, "reuse": matrix, "target": target}


def _sub(matrix: dict[str, Any], names: list[str]) -> np.ndarray:
    index = [matrix["names"].index(n) for n in names]
    return np.asarray(matrix["values"])[np.ix_(index, index)]


def _first_merge(m: np.ndarray, names: list[str]) -> list[str]:
    upper = np.triu_indices(len(names), 1)
    best = int(np.argmax(m[upper]))
    return sorted((names[upper[0][best]], names[upper[1][best]]))


def compare_reuse(
    a: dict[str, Any] | None, b: dict[str, Any] | None, names: list[str], n_perm: int, seed: int
) -> ReuseAgreement | None:
    """Two reuse matrices (``{"names", "values"}``) over the relations ``names`` they share.

    ``None`` when fewer than three relations are in both. The Spearman
    correlation of their off-diagonal entries comes with a permutation
    p-value (one matrix's relation labels shuffled ``n_perm`` times; ``None``
    where a matrix is constant), and the pair each merges first.
    """
    from scipy.stats import spearmanr

    if a is None or b is None:
        return None
    names = [n for n in names if n in a["names"] and n in b["names"]]
    if len(names) < 3:
        return None
    ma, mb = _sub(a, names), _sub(b, names)
    upper = np.triu_indices(len(names), 1)
    rho: float | None = None
    p: float | None = None
    if np.ptp(ma[upper]) > 0 and np.ptp(mb[upper]) > 0:  # a constant matrix has no rank correlation
        rho = float(spearmanr(ma[upper], mb[upper]).statistic)
        rng = np.random.default_rng(seed)
        null = []
        for _ in range(n_perm):
            shuffled = mb[np.ix_(order := rng.permutation(len(names)), order)][upper]
            null.append(float(spearmanr(ma[upper], shuffled).statistic) if np.ptp(shuffled) > 0 else 0.0)
        p = (1 + sum(v >= rho for v in null)) / (1 + n_perm)
    first_a, first_b = _first_merge(ma, names), _first_merge(mb, names)
    return ReuseAgreement(
        relations=names,
        spearman=rho,
        p=p,
        n_perm=n_perm,
        first_merge=[first_a, first_b],
        same_first_merge=first_a == first_b,
        matrices=[ma.tolist(), mb.tolist()],
    )


def compare_models(
    root: str | Path, models: list[str], *, n_perm: int = 1000, seed: int = 0
) -> ModelComparison:
    """The comparison of ``models`` (at least two) from their stored main-job results under ``root``."""
    if len(models) < 2 or len(set(models)) != len(models):
        raise InputError(f"compare at least two different models, not {models}")
    results = [read_model_results(root, m) for m in models]
    shared = [r for r in results[0]["relations"] if all(r in res["relations"] for res in results[1:])]
    if not shared:
        raise InputError(f"the models {models} have no relation in common under {root}")
    relations = []
    pairs = list(itertools.combinations(models, 2))
    for name in shared:
        per = {res["model"]: res["relations"][name] for res in results}
        overlap = {f"{a}|{b}": _overlap(per[a].depth, per[b].depth) for a, b in pairs}
        relations.append(RelationComparison(name, per, overlap))
    reuse = compare_reuse(results[0]["reuse"], results[1]["reuse"], shared, n_perm, seed)
    target = results[0]["target"]
    return ModelComparison(
        models=list(models),
        relations=relations,
        reuse=reuse,
        target=None if target is None else float(target),
        depth_bins=DEPTH_BINS,
        seed=seed,
    )
