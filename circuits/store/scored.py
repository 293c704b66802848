"""Scored graphs on disk as safetensors + JSON, written atomically (torch-free).

A scored-graph directory holds

- ``scores.safetensors``: the float32 score of every edge that exists
  (``edge_scores``, in the row-major order of :func:`~circuits.graph.edge_mask`;
  files written before version 0.4 hold the dense ``[senders, receivers]``
  matrix as ``scores``, which is still read) and, for graphs scored since
  version 0.3, each scoring pair's own scores of the strongest edges
  (``pair_edges``: int32 flat indices, ``pair_scores``: ``[n_pairs, K]``, at
  half precision as they were kept, see
  :func:`~circuits.graph.half_precision`), from which intervals and noise
  ceilings are drawn; a position-aware graph also holds ``role_edge_scores``
  (``[n_roles, n_edges]`` float32, one row per position role) and its pair
  scores index (edge, role) units;
- ``graph.json``: the metadata (model, relation, method, metric, ablation, IG
  steps, prompt counts, split seed, package version) and the graph's shape;
- ``relation.json``: the relation it was scored on (LRE schema), so a user's
  own relation file can be re-read for evaluation wherever it came from.

Every file is written to a temporary name in the same directory and renamed
into place, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from circuits.graph import N_ROLES, GraphShape, PairScores, ScoredGraph, edge_mask, upgrade_metadata
from circuits.io import atomic_write_bytes, atomic_write_text, read_json
from circuits.relations.roles import ROLES
from circuits.relations.schema import Relation, relation_to_json
from circuits.vocab import InputError

__all__ = ["META", "RELATION", "SCORES", "load_scored", "save_scored", "scored_dir"]

SCORES = "scores.safetensors"
META = "graph.json"
RELATION = "relation.json"


def save_scored(directory: str | Path, graph: ScoredGraph, relation: Relation | None = None) -> Path:
    """Write a scored graph (and its relation) into ``directory``.

    Parameters
    ----------
    directory : str or Path
        The folder to write into (created when missing); files already there
        are replaced.
    graph : ScoredGraph
        The scores (``scores.safetensors``, float32) and metadata with the
        graph's shape (``graph.json``).
    relation : Relation, optional
        The relation it was scored on, written in the LRE schema as
        ``relation.json`` so the held-out pairs can be remade from it later
        (:func:`circuits.evaluate_scored`), whatever file it came from.

    Returns
    -------
    Path
        ``directory``.

    Examples
    --------
    >>> import os, tempfile
    >>> from circuits import ScoreSettings, load_model, load_scored, save_scored, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> model = load_model("tiny-llama")
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> folder = save_scored(tempfile.mkdtemp(), graph, pairs.relation)
    >>> sorted(os.listdir(folder))
    ['graph.json', 'relation.json', 'scores.safetensors']
    >>> back = load_scored(folder)
    >>> bool((back.scores == graph.scores).all()), back.shape == graph.shape, back.metadata == graph.metadata
    (True, True, True)
    """
    from safetensors.numpy import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # only the edges that exist: half the dense matrix is structurally zero
    tensors = {"edge_scores": np.ascontiguousarray(graph.scores[graph.mask], dtype=np.float32)}
    if graph.role_scores is not None:
        tensors["role_edge_scores"] = np.ascontiguousarray(graph.role_scores[:, graph.mask], dtype=np.float32)
    if graph.pair_scores is not None:
        values = graph.pair_scores.values
        half = values.astype(np.float16)
        exact = np.array_equal(half.astype(np.float32), values)  # lossless only: kept at half precision
        tensors["pair_edges"] = np.ascontiguousarray(graph.pair_scores.edges, dtype=np.int32)
        tensors["pair_scores"] = np.ascontiguousarray(half if exact else values)
    atomic_write_bytes(directory / SCORES, save(tensors))
    if relation is not None:
        atomic_write_text(directory / RELATION, json.dumps(relation_to_json(relation), indent=2))
    atomic_write_text(directory / META, graph.metadata_json())
    return directory


def load_scored(directory: str | Path) -> ScoredGraph:
    """Read back a scored graph written by :func:`save_scored`, bit for bit.

    Parameters
    ----------
    directory : str or Path
        A folder holding ``graph.json`` and ``scores.safetensors`` (for a
        gallery, ``<root>/<model>/<relation>/scored``).

    Returns
    -------
    ScoredGraph
        The same scores, shape and metadata as were saved. Metadata written
        before version 0.2 (``method``) is read as ``score_method``.

    Raises
    ------
    InputError
        A file is missing or malformed; the message names it.

    Examples
    --------
    >>> import tempfile
    >>> from circuits import ScoreSettings, load_model, load_scored, save_scored, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, _ = score_relation(load_model("tiny-gpt2"), "country_capital_city", settings, progress=False)
    >>> back = load_scored(save_scored(tempfile.mkdtemp(), graph))
    >>> back.n_edges, back.metadata["model"], back.metadata["relation"]
    (110, 'tiny-gpt2', 'country_capital_city')
    >>> bool((back.scores == graph.scores).all())
    True
    >>> load_scored(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: ...: not a scored-graph directory (graph.json is missing); make one ...
    """
    from safetensors.numpy import load_file

    directory = Path(directory)
    meta_path, scores_path = directory / META, directory / SCORES
    for path in (meta_path, scores_path):
        if not path.is_file():
            raise InputError(f"{directory}: not a scored-graph directory ({path.name} is missing); "
                             "make one with `circuits score`")  # fmt: skip
    metadata = read_json(meta_path, what="scored-graph metadata")
    if not isinstance(metadata, dict):
        raise InputError(f"{meta_path}: the top level must be an object, not {type(metadata).__name__}")
    upgrade_metadata(metadata)
    shape_dict = metadata.pop("shape", None)
    if not isinstance(shape_dict, dict):
        raise InputError(f"{meta_path}: field 'shape' is missing or not an object")
    try:
        shape = GraphShape(**shape_dict)
    except TypeError as error:
        raise InputError(f"{meta_path}: field 'shape' is invalid: {error}") from None
    tensors = load_file(str(scores_path))
    scores = tensors.get("scores")
    if "edge_scores" in tensors:
        scores = _dense(tensors["edge_scores"], shape, scores_path)
    if scores is None:
        raise InputError(f"{scores_path}: holds no tensor named 'edge_scores' (or 'scores')")
    role_scores = None
    if "role_edge_scores" in tensors:
        rows = tensors["role_edge_scores"]
        if rows.ndim != 2 or rows.shape[0] != N_ROLES:
            raise InputError(f"{scores_path}: 'role_edge_scores' has shape {list(rows.shape)}, not "
                             f"[{N_ROLES}, n_edges] (one row per role: {', '.join(ROLES)})")  # fmt: skip
        role_scores = np.stack([_dense(row, shape, scores_path, "role_edge_scores") for row in rows])
    pair_scores = None
    if "pair_edges" in tensors and "pair_scores" in tensors:
        try:
            pair_scores = PairScores(tensors["pair_edges"], tensors["pair_scores"])
        except InputError as error:
            raise InputError(f"{scores_path}: {error}") from None
    try:
        return ScoredGraph(shape, scores, metadata, pair_scores, role_scores)
    except InputError as error:
        raise InputError(f"{scores_path}: {error}") from None


def _dense(values: np.ndarray, shape: GraphShape, path: Path, name: str = "edge_scores") -> np.ndarray:
    """The ``[senders, receivers]`` matrix of the scores of the existing edges, zero elsewhere."""
    mask = edge_mask(shape)
    if values.ndim != 1 or values.size != int(mask.sum()):
        raise InputError(f"{path}: '{name}' holds {list(values.shape)} values; the graph's shape "
                         f"{shape.as_dict()} has {int(mask.sum())} edges")  # fmt: skip
    scores = np.zeros(mask.shape, dtype=np.float32)
    scores[mask] = values
    return scores


def scored_dir(path: str | Path) -> Path:
    """``path`` when it holds a scored graph, else its ``scored/`` folder (a store relation folder)."""
    path = Path(path)
    if (path / META).is_file():
        return path
    if (path / "scored" / META).is_file():
        return path / "scored"
    raise InputError(f"{path}: not a scored-graph directory (no {META}); make one with `circuits score`")
