"""Fuzzing the file loaders: whatever bytes a file holds, loading gives a valid object
or a clean CircuitsError.

Each loader (relation JSON and CSV, graph.json + scores.safetensors, circuit
JSON) is fed random bytes, truncations of a valid file at random offsets,
valid files with random bytes changed, and structurally valid JSON with a
value of the wrong type put into a random field. Any exception other than a
:class:`~circuits.vocab.CircuitsError` (a traceback for the user) fails the
test; so does a loaded object that is not sound (non-finite scores, a circuit
that cannot be written back). No model is loaded.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TOY_SHAPE, toy_scored
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from circuits.circuit import Circuit
from circuits.graph import N_ROLES, PairScores, ScoredGraph, edge_mask
from circuits.relations import load_relation
from circuits.relations.schema import relation_to_json
from circuits.store import META, SCORES, load_scored, save_scored
from circuits.store.circuits import circuit_from_json, circuit_to_json, read_circuit
from circuits.vocab import CircuitsError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ seeds: small valid files


def full_metadata() -> dict[str, Any]:
    """The metadata `circuits score` writes (every field the engine reads), for the toy graph."""
    return {
        "model": "org/toy",
        "relation": "rel",
        "relation_source": "bundled:rel",
        "template": "X {} is",
        "score_method": "eap-ig",
        "metric": "logit-diff",
        "ablation": "counterfactual",
        "ig_steps": 5,
        "exact_refined_edges": 0,
        "n_pairs_scoring": 3,
        "n_pairs_heldout": 2,
        "n_facts": 9,
        "n_known": 5,
        "n_no_counterfactual": 0,
        "split_seed": 0,
        "seed": 0,
        "heldout_fraction": 0.4,
        "max_pairs": 8,
        "known_filter": {"heldout_fraction": 0.4, "max_rank": 1, "min_prob": 0.0},
        "processing": "none",
        "package_version": "0.4.0",
        "d_model": 32,
        "pair_edges": 6,
        "positions": "summed",
        "seconds": 0.5,
    }


def seed_graph(*, roles: bool = False) -> ScoredGraph:
    """The toy graph with full metadata and per-pair scores of its six strongest edges (or units)."""
    graph = toy_scored(seed=1)
    rng = np.random.default_rng(1)
    role_scores = None
    if roles:
        role_scores = rng.normal(size=(N_ROLES, TOY_SHAPE.n_senders, TOY_SHAPE.n_receivers))
        graph = ScoredGraph(TOY_SHAPE, role_scores.sum(0), role_scores=role_scores)
    graph.metadata = full_metadata() | ({"positions": "roles"} if roles else {})
    top = graph.ranked(by="abs", positions=graph.positions)[:6]
    graph.pair_scores = PairScores(top, np.round(rng.normal(size=(3, 6)), 2))
    return graph


def seed_circuit(*, roles: bool = False) -> Circuit:
    graph = seed_graph(roles=roles)
    circuit = Circuit.from_mask(
        graph,
        graph.top_mask(8, by="signed", positions=graph.positions),
        extract_method="top-n",
        params={"n": 8, "by": "signed"},
        name="seed",
    )
    circuit.faithfulness = 0.75
    circuit.params = {
        **circuit.params,
        "faithfulness_interval": {"value": 0.75, "low": 0.5, "high": 0.9, "n_boot": 50, "n_pairs": 2},
    }
    return circuit


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Any]:
    """Valid files of each kind (bytes) and the folder the fuzzed files are written into."""
    root = tmp_path_factory.mktemp("seeds")
    folders = {}
    for name, roles in (("scored", False), ("scored_roles", True)):
        folders[name] = save_scored(root / name, seed_graph(roles=roles))
    relation = load_relation("country_capital_city")
    lre = relation_to_json(relation)
    lre["samples"] = lre["samples"][:5]
    return {
        "work": tmp_path_factory.mktemp("fuzz"),
        "graph_json": {k: (f / META).read_bytes() for k, f in folders.items()},
        "safetensors": {k: (f / SCORES).read_bytes() for k, f in folders.items()},
        "circuit": {
            "summed": circuit_to_json(seed_circuit()).encode(),
            "roles": circuit_to_json(seed_circuit(roles=True)).encode(),
        },
        "relation_json": json.dumps(lre, indent=1).encode(),
        "csv": b'subject,object\nFrance,Paris\nJapan,Tokyo\n"Peru, the republic",Lima\n',
    }


def test_the_seeds_load(seeds) -> None:
    work = seeds["work"]
    for kind in ("scored", "scored_roles"):
        assert_scored(load_one_scored(work, seeds, kind))
    for blob in seeds["circuit"].values():
        assert_circuit(load_circuit_bytes(work, blob))
    assert len(load_relation_bytes(work, seeds["relation_json"], ".json").facts) == 5
    assert len(load_relation_bytes(work, seeds["csv"], ".csv").facts) == 3


# ------------------------------------------------------------------ loading fuzzed bytes


def load_one_scored(
    work: Path, seeds: dict[str, Any], kind: str, *, meta: bytes | None = None, scores: bytes | None = None
) -> ScoredGraph:
    folder = work / "scored"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / META).write_bytes(seeds["graph_json"][kind] if meta is None else meta)
    (folder / SCORES).write_bytes(seeds["safetensors"][kind] if scores is None else scores)
    return load_scored(folder)


def load_circuit_bytes(work: Path, blob: bytes) -> Circuit:
    path = work / "c.circuit.json"
    path.write_bytes(blob)
    return read_circuit(path)


def load_relation_bytes(work: Path, blob: bytes, suffix: str) -> Any:
    path = work / f"rel{suffix}"
    path.write_bytes(blob)
    return load_relation(path, template="The capital of {} is")


def assert_scored(graph: ScoredGraph) -> None:
    """A loaded graph is sound: finite float32 scores of its shape, pair scores indexing real units."""
    assert graph.scores.dtype == np.float32 and np.isfinite(graph.scores).all()
    assert graph.scores.shape == (graph.shape.n_senders, graph.shape.n_receivers)
    if graph.role_scores is not None:
        assert np.isfinite(graph.role_scores).all()
    if graph.pair_scores is not None:
        assert np.isfinite(graph.pair_scores.values).all()
        assert graph.unit_mask(graph.positions).ravel()[graph.pair_scores.edges].all()
    json.dumps(dict(graph.metadata), allow_nan=False)


def assert_circuit(circuit: Circuit) -> None:
    """A loaded circuit is sound: it writes back to JSON and reads back equal; its masks can be built."""
    assert circuit_from_json(circuit_to_json(circuit)) == circuit
    assert circuit.to_unit_mask().sum() == circuit.n_units
    assert all(math.isfinite(v) for v in circuit.edges.values())


def clean(load, check) -> None:
    """Run ``load``: it gives an object that passes ``check``, or raises a CircuitsError (nothing else)."""
    try:
        result = load()
    except CircuitsError:
        event("refused")
        return
    event("loaded")
    check(result)


# ------------------------------------------------------------------ strategies

byte_flips = st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6
)


def flip(blob: bytes, flips: list[tuple[float, int]], *, head: int | None = None) -> bytes:
    """``blob`` with the bytes at the relative offsets of ``flips`` set (within the first ``head`` bytes)."""
    out = bytearray(blob)
    span = len(out) if head is None else min(head, len(out))
    for where, value in flips:
        out[int(where * span)] = value
    return bytes(out)


def cut(blob: bytes, where: float) -> bytes:
    return blob[: int(where * len(blob))]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.sampled_from([10**400, -1, 0, 2**31])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", "NaN", "{}", "a0.h0", "a99.h0<q>", "logits", "kl", "roles", "1.5"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def paths_of(data: Any, path: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indices) into nested JSON data, the root excluded."""
    out = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        out.append((*path, key))
        out.extend(paths_of(value, (*path, key)))
    return out


def replaced(data: Any, path: tuple, value: Any, *, delete: bool = False) -> Any:
    """A deep copy of ``data`` with the field at ``path`` set to ``value`` (or deleted)."""
    data = json.loads(json.dumps(data))
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    if delete and isinstance(holder, dict):
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return data


@st.composite
def wrong_values(draw, blob: bytes) -> bytes:
    """``blob`` (JSON) with one to three random fields given random values of any type, or deleted."""
    data = json.loads(blob)
    for _ in range(draw(st.integers(1, 3))):
        paths = paths_of(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        data = replaced(data, path, draw(json_values), delete=draw(st.booleans()) and draw(st.booleans()))
    return json.dumps(data).encode()  # NaN and Infinity are written as Python does


# ------------------------------------------------------------------ circuit JSON


@FUZZ
@given(blob=st.binary(max_size=400))
def test_circuit_random_bytes(seeds, blob: bytes) -> None:
    clean(lambda: load_circuit_bytes(seeds["work"], blob), assert_circuit)


@FUZZ
@given(kind=st.sampled_from(["summed", "roles"]), where=st.floats(0, 1))
def test_circuit_truncated(seeds, kind: str, where: float) -> None:
    clean(lambda: load_circuit_bytes(seeds["work"], cut(seeds["circuit"][kind], where)), assert_circuit)


@FUZZ
@given(kind=st.sampled_from(["summed", "roles"]), flips=byte_flips)
def test_circuit_byte_flips(seeds, kind: str, flips) -> None:
    clean(lambda: load_circuit_bytes(seeds["work"], flip(seeds["circuit"][kind], flips)), assert_circuit)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["summed", "roles"]))
def test_circuit_wrong_types(seeds, data, kind: str) -> None:
    blob = data.draw(wrong_values(seeds["circuit"][kind]))
    clean(lambda: load_circuit_bytes(seeds["work"], blob), assert_circuit)


# ------------------------------------------------------------------ graph.json and scores.safetensors

kinds = st.sampled_from(["scored", "scored_roles"])


@FUZZ
@given(kind=kinds, blob=st.binary(max_size=300), which=st.sampled_from(["meta", "scores"]))
def test_scored_random_bytes(seeds, kind: str, blob: bytes, which: str) -> None:
    clean(lambda: load_one_scored(seeds["work"], seeds, kind, **{which: blob}), assert_scored)


@FUZZ
@given(kind=kinds, where=st.floats(0, 1), which=st.sampled_from(["meta", "scores"]))
def test_scored_truncated(seeds, kind: str, where: float, which: str) -> None:
    blob = cut(seeds["graph_json" if which == "meta" else "safetensors"][kind], where)
    clean(lambda: load_one_scored(seeds["work"], seeds, kind, **{which: blob}), assert_scored)


@FUZZ
@given(kind=kinds, flips=byte_flips, header=st.booleans())
def test_safetensors_byte_flips(seeds, kind: str, flips, header: bool) -> None:
    blob = seeds["safetensors"][kind]
    # the JSON header, where a flip changes names, dtypes and shapes
    size = 8 + int.from_bytes(blob[:8], "little")
    changed = flip(blob, flips, head=size if header else None)
    clean(lambda: load_one_scored(seeds["work"], seeds, kind, scores=changed), assert_scored)


@FUZZ
@given(kind=kinds, flips=byte_flips)
def test_graph_json_byte_flips(seeds, kind: str, flips) -> None:
    changed = flip(seeds["graph_json"][kind], flips)
    clean(lambda: load_one_scored(seeds["work"], seeds, kind, meta=changed), assert_scored)


@FUZZ
@given(data=st.data(), kind=kinds)
def test_graph_json_wrong_types(seeds, data, kind: str) -> None:
    blob = data.draw(wrong_values(seeds["graph_json"][kind]))
    clean(lambda: load_one_scored(seeds["work"], seeds, kind, meta=blob), assert_scored)


SIZES = sorted(
    {0, 1, 3, 6, N_ROLES, TOY_SHAPE.n_senders, TOY_SHAPE.n_receivers, int(edge_mask(TOY_SHAPE).sum())}
)


@FUZZ
@given(
    kind=kinds,
    name=st.sampled_from(["edge_scores", "scores", "role_edge_scores", "pair_edges", "pair_scores"]),
    dtype=st.sampled_from([np.float32, np.float16, np.float64, np.int32, np.int64, np.uint8]),
    dims=st.lists(st.sampled_from(SIZES), max_size=3),
    real=st.booleans(),
    fill=st.sampled_from([np.nan, np.inf, -np.inf, -1, 10**6, 2**31 - 1, 0.5]),
    where=st.floats(0, 1),
    drop=st.none() | st.sampled_from(["edge_scores", "role_edge_scores", "pair_edges", "pair_scores"]),
)
def test_safetensors_wrong_tensors(
    seeds, kind, name, dtype, dims, real: bool, fill, where: float, drop
) -> None:
    """A tensor of a known name with a random dtype and shape (or its own), one value set to anything."""
    from safetensors.numpy import load, save

    tensors = load(seeds["safetensors"][kind])
    array = tensors[name].copy() if real and name in tensors else np.zeros(dims, dtype=dtype)
    if array.size:
        with np.errstate(all="ignore"):
            array.flat[min(int(where * array.size), array.size - 1)] = np.array(fill).astype(array.dtype)
    changed = {k: v for k, v in {**tensors, name: array}.items() if k != drop}
    blob = save(changed) if changed else b""
    clean(lambda: load_one_scored(seeds["work"], seeds, kind, scores=blob), assert_scored)


# ------------------------------------------------------------------ relations (JSON and CSV)


def assert_relation(relation: Any) -> None:
    assert relation.facts and all(f.subject and f.object for f in relation.facts)
    assert len({f.subject for f in relation.facts}) == len(relation.facts)
    assert all(t.count("{}") == 1 for t in relation.prompt_templates)


@FUZZ
@given(blob=st.binary(max_size=300), suffix=st.sampled_from([".json", ".csv"]))
def test_relation_random_bytes(seeds, blob: bytes, suffix: str) -> None:
    clean(lambda: load_relation_bytes(seeds["work"], blob, suffix), assert_relation)


@FUZZ
@given(where=st.floats(0, 1), suffix=st.sampled_from([".json", ".csv"]))
def test_relation_truncated(seeds, where: float, suffix: str) -> None:
    blob = cut(seeds["relation_json" if suffix == ".json" else "csv"], where)
    clean(lambda: load_relation_bytes(seeds["work"], blob, suffix), assert_relation)


@FUZZ
@given(flips=byte_flips, suffix=st.sampled_from([".json", ".csv"]))
def test_relation_byte_flips(seeds, flips, suffix: str) -> None:
    blob = flip(seeds["relation_json" if suffix == ".json" else "csv"], flips)
    clean(lambda: load_relation_bytes(seeds["work"], blob, suffix), assert_relation)


@FUZZ
@given(data=st.data())
def test_relation_json_wrong_types(seeds, data) -> None:
    blob = data.draw(wrong_values(seeds["relation_json"]))
    clean(lambda: load_relation_bytes(seeds["work"], blob, ".json"), assert_relation)


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=8), max_size=4), max_size=6), bom=st.booleans())
def test_relation_csv_random_rows(seeds, rows: list[list[str]], bom: bool) -> None:
    import csv
    import io

    text = io.StringIO()
    csv.writer(text).writerows(rows)
    blob = ("\ufeff" if bom else "").encode() + text.getvalue().encode("utf-8", "surrogatepass")
    clean(lambda: load_relation_bytes(seeds["work"], blob, ".csv"), assert_relation)
