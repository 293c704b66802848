"""Files on disk: scored graphs as safetensors + JSON, written atomically.

A scored-graph directory holds

- ``scores.safetensors``: the dense ``[senders, receivers]`` float32 scores;
- ``graph.json``: the metadata (model, relation, method, metric, ablation, IG
  steps, prompt counts, split seed, package version) and the graph's shape;
- ``relation.json``: the relation it was scored on (LRE schema), so a user's
  own relation file can be re-read for evaluation wherever it came from.

Every file is written to a temporary name in the same directory and renamed
into place, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from circuits.data import Relation
from circuits.graph import GraphShape, ScoredGraph
from circuits.vocab import InputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "load_scored", "relation_to_json", "save_scored"]

SCORES = "scores.safetensors"
META = "graph.json"
RELATION = "relation.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def relation_to_json(relation: Relation) -> dict[str, Any]:
    """The relation in the LRE JSON schema."""
    return {
        "name": relation.title,
        "prompt_templates": list(relation.prompt_templates),
        "prompt_templates_zs": list(relation.prompt_templates_zs),
        "properties": relation.properties,
        "samples": [{"subject": f.subject, "object": f.object} for f in relation.facts],
    }


def save_scored(directory: str | Path, graph: ScoredGraph, relation: Relation | None = None) -> Path:
    """Write a scored graph (and its relation) into ``directory``."""
    from safetensors.numpy import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / SCORES, save({"scores": np.ascontiguousarray(graph.scores)}))
    if relation is not None:
        atomic_write_text(directory / RELATION, json.dumps(relation_to_json(relation), indent=2))
    atomic_write_text(directory / META, graph.metadata_json())
    return directory


def load_scored(directory: str | Path) -> ScoredGraph:
    """Read back a scored graph written by :func:`save_scored`, bit for bit."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    meta_path, scores_path = directory / META, directory / SCORES
    for path in (meta_path, scores_path):
        if not path.is_file():
            raise InputError(f"{directory}: not a scored-graph directory ({path.name} is missing); "
                             "make one with `circuits score`")  # fmt: skip
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{meta_path}: malformed JSON at line {error.lineno}: {error.msg}") from None
    shape_dict = metadata.pop("shape", None)
    if not isinstance(shape_dict, dict):
        raise InputError(f"{meta_path}: field 'shape' is missing or not an object")
    try:
        shape = GraphShape(**shape_dict)
    except TypeError as error:
        raise InputError(f"{meta_path}: field 'shape' is invalid: {error}") from None
    scores = load_file(str(scores_path)).get("scores")
    if scores is None:
        raise InputError(f"{scores_path}: holds no tensor named 'scores'")
    return ScoredGraph(shape, scores, metadata)
