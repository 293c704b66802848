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
from typing import Any

import numpy as np

from circuits.checks import REQUIRED_METADATA, check_metadata
from circuits.graph import N_ROLES, GraphShape, PairScores, ScoredGraph, edge_mask, upgrade_metadata
from circuits.io import atomic_write_bytes, atomic_write_text, read_json
from circuits.relations.roles import ROLES
from circuits.relations.schema import Relation, relation_to_json
from circuits.vocab import InputError

__all__ = ["META", "RELATION", "SCORES", "StoredMetadata", "load_scored", "save_scored", "scored_dir"]

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
    for name, values in (("scores", graph.scores), ("role scores", graph.role_scores)):
        bad = 0 if values is None else int((~np.isfinite(values)).sum())
        if bad:  # a graph that cannot be loaded back is never written
            raise InputError(
                f"{directory}: the graph's {name} hold {bad} NaN or infinite values; nothing was "
                "written (a model whose activations overflow cannot be scored at this precision)"
            )
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

    Everything is checked before it is used: the shape in ``graph.json``
    against sane bounds (:meth:`GraphShape.from_dict`) before anything of
    its size is allocated, the metadata fields the engine reads
    (:func:`~circuits.checks.check_metadata`; a graph written by ``circuits
    score`` must have every one of :data:`~circuits.checks.REQUIRED_METADATA`),
    and each tensor's dtype and shape against the graph's (from the file's
    header, before reading it); no score may be NaN or infinite.

    Parameters
    ----------
    directory : str or Path
        A folder holding ``graph.json`` and ``scores.safetensors`` (for a
        gallery, ``<root>/<model>/<relation>/scored``).

    Returns
    -------
    ScoredGraph
        The same scores, shape and metadata as were saved. Metadata written
        before version 0.2 (``method``) is read as ``score_method``. Reading
        a field the file lacks with ``graph.metadata[...]`` (a graph imported
        or made by hand may lack what evaluation needs) is an
        :class:`InputError` naming the file and the field.

    Raises
    ------
    InputError
        A file is missing or malformed; the message names it, the field or
        tensor, and what was expected.

    Examples
    --------
    >>> import tempfile
    >>> from circuits import ScoreSettings, load_model, load_scored, save_scored, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, _ = score_relation(load_model("tiny-gpt2"), "country_capital_city", settings, progress=False)
    >>> folder = save_scored(tempfile.mkdtemp(), graph)
    >>> back = load_scored(folder)
    >>> back.n_edges, back.metadata["model"], back.metadata["relation"]
    (110, 'tiny-gpt2', 'country_capital_city')
    >>> bool((back.scores == graph.scores).all())
    True
    >>> load_scored(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: ...: not a scored-graph directory (graph.json is missing); make one ...

    A truncated scores file:

    >>> scores = folder / "scores.safetensors"
    >>> _ = scores.write_bytes(scores.read_bytes()[:100])
    >>> load_scored(folder)  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: .../scores.safetensors: not a readable safetensors file (...);
    it is truncated ...
    """
    directory = Path(directory)
    meta_path, scores_path = directory / META, directory / SCORES
    for path in (meta_path, scores_path):
        if not path.is_file():
            raise InputError(
                f"{directory}: not a scored-graph directory ({path.name} is missing); "
                "make one with `circuits score`"
            )
    metadata = read_json(meta_path, what="scored-graph metadata")
    if not isinstance(metadata, dict):
        raise InputError(f"{meta_path}: the top level must be an object, not {type(metadata).__name__}")
    upgrade_metadata(metadata)
    if "shape" not in metadata or not isinstance(metadata["shape"], dict):
        raise InputError(f"{meta_path}: field 'shape' is missing or not an object")
    shape = GraphShape.from_dict(metadata.pop("shape"), source=f"{meta_path}: field 'shape' is invalid")
    required = REQUIRED_METADATA if "package_version" in metadata else ()  # written by `circuits score`
    check_metadata(metadata, str(meta_path), required=required)
    tensors = _read_tensors(scores_path, shape)
    mask = edge_mask(shape)
    if "edge_scores" in tensors:
        scores = np.zeros(mask.shape, dtype=np.float32)
        scores[mask] = tensors["edge_scores"]
    else:
        scores = np.where(mask, tensors["scores"], np.float32(0))
    dense_name = "edge_scores" if "edge_scores" in tensors else "scores"
    _check_finite(scores[mask], shape, mask, scores_path, dense_name)
    role_scores = None
    if "role_edge_scores" in tensors:
        rows = tensors["role_edge_scores"]
        _check_finite(rows.ravel(), shape, mask, scores_path, "role_edge_scores")
        role_scores = np.zeros((N_ROLES, *mask.shape), dtype=np.float32)
        role_scores[:, mask] = rows
    pair_scores = None
    if "pair_edges" in tensors:
        edges, values = tensors["pair_edges"].astype(np.int64), tensors["pair_scores"]
        valid = mask.ravel() if role_scores is None else np.broadcast_to(mask, role_scores.shape).ravel()
        outside = (edges < 0) | (edges >= valid.size)
        if outside.any() or not valid[edges].all():
            bad = int(edges[outside][0]) if outside.any() else int(edges[~valid[edges]][0])
            units = "edge" if role_scores is None else "(role, edge) unit"
            raise InputError(
                f"{scores_path}: 'pair_edges' holds {bad}, which is not the index of an "
                f"{units} of the graph (flat indices into its {valid.size} score "
                "entries)"
            )
        if not np.isfinite(values).all():
            raise InputError(
                f"{scores_path}: 'pair_scores' holds NaN or infinite scores; scores "
                "must be finite (score the relation again with `circuits score`)"
            )
        pair_scores = PairScores(edges, values)
    try:
        graph = ScoredGraph(shape, scores, {}, pair_scores, role_scores)
    except InputError as error:
        raise InputError(f"{scores_path}: {error}") from None
    graph.metadata = StoredMetadata(metadata, str(meta_path))
    return graph


class StoredMetadata(dict):  # type: ignore[type-arg]
    """A stored graph's metadata: reading a field it lacks with ``[]`` is an :class:`InputError`
    naming the file.

    A graph imported from another format or made by hand may lack fields
    that evaluation needs (``model``, ``relation``, ``metric``, ...); the
    error then says which, instead of a bare ``KeyError``. ``.get`` and
    ``in`` behave as for any dict.

    >>> meta = StoredMetadata({"model": "gpt2"}, "g/graph.json")
    >>> meta["model"], meta.get("metric"), meta == {"model": "gpt2"}
    ('gpt2', None, True)
    >>> meta["metric"]  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: g/graph.json: field 'metric' is missing (fields there: model); ...
    """

    source = "graph.json"

    def __init__(self, data: dict[str, Any], source: str) -> None:
        super().__init__(data)
        self.source = source

    def __missing__(self, key: str) -> Any:
        fields = ", ".join(sorted(map(str, self))[:8]) + (", ..." if len(self) > 8 else "") or "none"
        raise InputError(
            f"{self.source}: field {key!r} is missing (fields there: {fields}); the graph was not "
            "written by `circuits score`, and this needs it: score the relation with "
            "`circuits score`"
        )


_TENSORS = {
    "edge_scores": ("F32",),
    "scores": ("F32",),
    "role_edge_scores": ("F32",),
    "pair_edges": ("I32", "I64"),
    "pair_scores": ("F16", "F32"),
}
"""The tensors a scores file may hold and the dtypes each may have (safetensors' names)."""

_DTYPE_NAMES = {
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "BF16": "bfloat16",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "U8": "uint8",
    "BOOL": "bool",
}


def _read_tensors(path: Path, shape: GraphShape) -> dict[str, np.ndarray]:
    """The tensors of a scores file, each checked (dtype, shape) against ``shape`` from the header first."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            names = [name for name in handle.keys() if name in _TENSORS]  # noqa: SIM118 (not a dict)
            header = {
                name: (handle.get_slice(name).get_dtype(), list(handle.get_slice(name).get_shape()))
                for name in names
            }
            _check_header(header, shape, path)
            return {name: handle.get_tensor(name) for name in header}
    except SafetensorError as error:
        reason = str(error).removeprefix("Error while deserializing header: ")
        raise InputError(
            f"{path}: not a readable safetensors file ({reason}); it is truncated or not a scores "
            "file: score the relation again with `circuits score`"
        ) from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None


def _check_header(header: dict[str, tuple[str, list[int]]], shape: GraphShape, path: Path) -> None:
    """An :class:`InputError` unless the tensors ``{name: (dtype, dims)}`` are those of a graph
    of ``shape``."""
    if "edge_scores" not in header and "scores" not in header:
        raise InputError(
            f"{path}: holds no tensor named 'edge_scores' (or 'scores'); it is not the scores "
            "file of a graph (score the relation with `circuits score`)"
        )
    if ("pair_edges" in header) != ("pair_scores" in header):
        have, lack = sorted(("pair_edges", "pair_scores"), key=lambda n: n not in header)
        raise InputError(f"{path}: holds tensor {have!r} but not {lack!r}; both or neither are expected")
    n_edges = shape.n_edges
    pair_dims = header.get("pair_edges", ("", [0]))[1]
    k = pair_dims[0] if len(pair_dims) == 1 else 0
    expected: dict[str, tuple[list[Any], str]] = {
        "edge_scores": ([n_edges], f"one score per edge: the graph has {n_edges}"),
        "scores": ([shape.n_senders, shape.n_receivers], "the dense [senders, receivers] matrix"),
        "role_edge_scores": ([N_ROLES, n_edges], f"a row per role ({', '.join(ROLES)}), a score per edge"),
        "pair_edges": ([k], "[K] flat indices of the strongest edges"),
        "pair_scores": (["n_pairs", k], f"[n_pairs, K] scores of the K = {k} edges of 'pair_edges'"),
    }
    for name, (dtype, dims) in header.items():
        want, meaning = expected[name]
        fits = len(dims) == len(want) and all(
            d == w or (w == "n_pairs" and d >= 1) for d, w in zip(dims, want, strict=True)
        )
        if dtype not in _TENSORS[name] or not fits:
            types = " or ".join(_DTYPE_NAMES[t] for t in _TENSORS[name])
            raise InputError(
                f"{path}: {name!r} holds {dims} values of {_DTYPE_NAMES.get(dtype, dtype)}; the "
                f"tensor must be {types} [{', '.join(map(str, want))}] ({meaning}; the graph's "
                f"shape is {shape.as_dict()})"
            )


def _check_finite(values: np.ndarray, shape: GraphShape, mask: np.ndarray, path: Path, name: str) -> None:
    """An :class:`InputError` naming the first edge whose score in tensor ``name`` is NaN or infinite."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        edge = int(bad[0]) % int(mask.sum())
        s, r = (int(i[edge]) for i in np.nonzero(mask))
        edge_name = f"{shape.sender_names()[s]} -> {shape.receiver_names()[r]}"
        raise InputError(
            f"{path}: {name!r} holds {bad.size} NaN or infinite scores (the first on edge "
            f"{edge_name}); scores must be finite: score the relation again with "
            "`circuits score`"
        )


def scored_dir(path: str | Path) -> Path:
    """``path`` when it holds a scored graph, else its ``scored/`` folder (a store relation folder)."""
    path = Path(path)
    if (path / META).is_file():
        return path
    if (path / "scored" / META).is_file():
        return path / "scored"
    raise InputError(f"{path}: not a scored-graph directory (no {META}); make one with `circuits score`")
