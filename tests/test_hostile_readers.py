"""What careless and hostile files must not do even when they load.

A shape no model has is refused before anything of its size is allocated; a
circuit's edges and fields are checked against its shape and their types; old
and imported graphs still load; a byte-order mark does not end up in a fact,
and repeated subjects are not dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_scored
from hostile_folder import copy, edit_json, make_folder

from circuits.graph import MAX_GRAPH_ENTRIES, MAX_HEADS, MAX_LAYERS, GraphShape
from circuits.relations import load_relation
from circuits.store import META, SCORES, load_scored, read_circuit, save_scored
from circuits.vocab import InputError


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """The folder of :func:`hostile_folder.make_folder`, made once for this module."""
    return make_folder(tmp_path_factory.mktemp("made"))


def test_shape_bounds_are_above_every_real_model() -> None:
    assert MAX_LAYERS >= 8 * 126 and MAX_HEADS >= 4 * 232  # Llama 3.1 405B layers, Falcon 180B heads
    for real in (
        GraphShape(126, 128, 8),
        GraphShape(105, 128, 128),
        GraphShape(80, 232, 8),
        GraphShape(96, 96, 96),
    ):
        assert real.check_bounds() is real  # Llama 3.1 405B, MT-NLG 530B, Falcon 180B, GPT-3
        assert GraphShape.from_dict(real.as_dict()) == real
    assert (
        GraphShape(105, 128, 128).n_senders * GraphShape(105, 128, 128).n_receivers * 1.9 < MAX_GRAPH_ENTRIES
    )


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        ({"n_layers": 10**7, "n_heads": 4, "n_kv_heads": 4}, "n_layers is 10000000; valid: 1 to 1024"),
        ({"n_layers": 2, "n_heads": 2000, "n_kv_heads": 1}, "n_heads is 2000; valid: 1 to 1024"),
        ({"n_layers": 1000, "n_heads": 1000, "n_kv_heads": 1000}, "senders x receivers entries"),
        ({"n_layers": 0, "n_heads": 4, "n_kv_heads": 4}, "n_layers is 0; valid: 1 to 1024"),
        ({"n_layers": 2, "n_heads": 4, "n_kv_heads": 3}, "must be a multiple of n_kv_heads"),
        ({"n_layers": 2.0, "n_heads": 4, "n_kv_heads": 4}, "n_layers must be a whole number, not 2.0"),
        ({"n_layers": True, "n_heads": 4, "n_kv_heads": 4}, "n_layers must be a whole number, not True"),
        ({"n_layers": 2, "n_heads": 4, "n_kv_heads": 4, "parallel": "no"}, "parallel must be true or false"),
        ({"n_layers": 2, "n_heads": 4}, "misses n_kv_heads"),
        ({"n_layers": 2, "n_heads": 4, "n_kv_heads": 4, "layers": 3}, "unknown fields layers"),
        ([2, 4, 4], "must be an object"),
    ],
)
def test_shapes_read_from_files_are_checked_before_anything_is_allocated(shape, says: str) -> None:
    with pytest.raises(
        InputError, match=r"^f\.json: shape: .*" + says.replace("(", r"\(").replace(")", r"\)")
    ):
        GraphShape.from_dict(shape, source="f.json: shape")


def test_a_huge_shape_in_a_circuit_is_refused_at_once_without_memory(made: Path, tmp_path: Path) -> None:
    import resource
    import time

    path = copy(made, tmp_path) / "c.circuit.json"
    for n_layers, n_heads in ((10**7, 4), (1000, 1000), (1024, 1024)):
        edit_json(
            path,
            lambda d, n=n_layers, h=n_heads: d["graph"]["shape"].update(n_layers=n, n_heads=h, n_kv_heads=h),
        )
        before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        with pytest.raises(InputError, match="c\\.circuit\\.json: graph attribute 'shape' is invalid"):
            read_circuit(path)
        assert time.perf_counter() - started < 1.0
        assert (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000
        )  # kB: nothing was allocated


def test_circuit_edges_out_of_range_or_backwards_name_the_file_the_edge_and_the_range(made, tmp_path) -> None:
    path = copy(made, tmp_path) / "c.circuit.json"
    good = path.read_text()
    cases = [
        (("a1.h9", "logits"), r"'a1\.h9' is not a sender .*: it names head 9; the graph has heads 0 to 3"),
        (
            ("input", "a0.h2<k>"),
            r"'a0\.h2<k>' is not a receiver .*key/value head 2; the graph has key/value "
            r"heads 0 to 1",
        ),
        (("a1.h0", "a0.h1<q>"), r"edge \('a1\.h0', 'a0\.h1<q>'\) is not an edge .*a sender must come before"),
        (("a0.h0<q>", "logits"), r"'a0\.h0<q>' is not a sender .*it is a head's input"),
        (("m0", "input"), r"'input' is not a receiver"),
        (("a00.h1", "logits"), r"the engine spells it 'a0\.h1'"),
    ]
    for (sender, receiver), says in cases:
        path.write_text(good)
        edit_json(path, lambda d, s=sender, r=receiver: d["edges"][0].update(source=s, target=r))
        with pytest.raises(InputError, match=rf"^{path}: .*{says}"):
            read_circuit(path)


def test_circuit_fields_of_the_wrong_type_are_refused(made: Path, tmp_path: Path) -> None:
    path = copy(made, tmp_path) / "c.circuit.json"
    good = path.read_text()
    cases = [
        (lambda d: d["nodes"][0].update(score="1"), r"node 'input': 'score' is '1'"),
        (lambda d: d.update(edges={"a": 1}), r"'edges' must be a list"),
        (lambda d: d["edges"].append(dict(d["edges"][0])), r"appears twice"),
        (lambda d: d.update(directed=False), r"a circuit is a directed graph"),
        (lambda d: d["graph"].update(params={"n": "10"}), r"'params': field 'n' is '10'"),
        (
            lambda d: d["graph"].update(params={"by": 1}),
            r"'params': field 'by' is 1; valid: 'signed' or 'abs'",
        ),
        (
            lambda d: d["graph"]["params"].update(faithfulness_interval={"value": "high"}),
            r"'faithfulness_interval\.value' is 'high'",
        ),
        (lambda d: d["graph"].update(provenance=[1]), r"'provenance' must be an object"),
        (
            lambda d: d["graph"]["provenance"].update(metric="accuracy"),
            r"field 'metric' is 'accuracy'; valid: ",
        ),
        (lambda d: d["graph"]["provenance"].update(split_seed=True), r"field 'split_seed' is True"),
        (lambda d: d["graph"].update(name=5), r"'name' must be a string"),
    ]
    for change, says in cases:
        path.write_text(good)
        edit_json(path, change)
        with pytest.raises(InputError, match=rf"^{path}: .*{says}"):
            read_circuit(path)
    path.write_text("\ufeff" + good)  # a byte-order mark from an editor is not an error
    assert read_circuit(path).name == "c"


def test_graphs_of_older_versions_and_imported_graphs_still_load(made: Path, tmp_path: Path) -> None:
    folder = copy(made, tmp_path)
    edit_json(folder / META, lambda d: d.update(method=d.pop("score_method")))  # before 0.2
    assert load_scored(folder).metadata["score_method"] == "eap-ig"
    imported = toy_scored()
    imported.metadata = {
        "score_method": "imported",
        "source_format": "eap-ig",
        "d_model": None,
        "imported_from": {"path": "x.json", "format": "mib-json"},
    }
    save_scored(tmp_path / "imported", imported)
    back = load_scored(tmp_path / "imported")
    assert back.metadata.get("relation") is None
    with pytest.raises(
        InputError, match=r"imported/graph\.json: field 'relation' is missing \(fields there: "
    ):
        back.metadata["relation"]  # what evaluation reads: an error naming the file, not a KeyError
    from safetensors.numpy import save_file

    save_file(
        {"scores": imported.scores.astype(np.float32)}, str(tmp_path / "imported" / SCORES)
    )  # 0.3's dense
    assert np.array_equal(load_scored(tmp_path / "imported").scores, imported.scores)


def test_scores_files_with_wrong_tensors_name_the_tensor(made: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    folder = copy(made, tmp_path)
    tensors = load_file(str(folder / SCORES))
    n = tensors["edge_scores"].size
    cases = [
        (
            {"edge_scores": tensors["edge_scores"].astype(np.int32)},
            rf"'edge_scores' holds \[{n}\] values of int32",
        ),
        ({"edge_scores": tensors["edge_scores"].reshape(1, n)}, rf"'edge_scores' holds \[1, {n}\] values"),
        (
            {"pair_edges": np.array([10**6], np.int32), "pair_scores": np.zeros((2, 1), np.float32)},
            r"'pair_edges' holds 1000000, which is not the index of an edge",
        ),
        ({"pair_edges": np.array([0, 1], np.int32)}, r"holds tensor 'pair_edges' but not 'pair_scores'"),
        ({"edge_scores": np.full(n, np.inf, np.float32)}, rf"'edge_scores' holds {n} NaN or infinite scores"),
    ]
    for replace, says in cases:
        save_file({"edge_scores": tensors["edge_scores"], **replace}, str(folder / SCORES))
        with pytest.raises(InputError, match=rf"^{folder / SCORES}: {says}"):
            load_scored(folder)
    os.truncate(folder / SCORES, 0)
    with pytest.raises(InputError, match=r"not a readable safetensors file \(header too small\)"):
        load_scored(folder)


def test_csv_and_json_relations_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "caps.csv"
    path.write_bytes("\ufeffsubject,object\nFrance,Paris\nJapan,Tokyo\n".encode())
    rel = load_relation(path, template="The capital of {} is")
    assert [f.subject for f in rel.facts] == ["France", "Japan"]  # the header is not a fact
    lre = tmp_path / "caps.json"
    lre.write_bytes(
        (
            "\ufeff"
            + json.dumps(
                {"prompt_templates": ["{} is in"], "samples": [{"subject": "Paris", "object": "France"}]}
            )
        ).encode()
    )
    assert load_relation(lre).facts[0].subject == "Paris"
    raw = b'{"prompt_templates": ["{} is in"],\n "samples": [{"subject": "Par\xeds", "object": "x"}]}'
    lre.write_bytes(raw)
    with pytest.raises(
        InputError, match=rf"caps\.json: line 2 is not UTF-8 \(byte {raw.index(0xED)} of the file is 0xed\)"
    ):
        load_relation(lre)


def test_repeated_subjects_with_other_objects_are_warned_about(tmp_path: Path, caplog) -> None:
    path = tmp_path / "caps.csv"
    path.write_text(
        "France,Paris\nFrance,Lyon\nJapan,Tokyo\nJapan,Tokyo\nPeru,Lima\nPeru,Cusco\nPeru,Callao\n"
    )
    with caplog.at_level(logging.WARNING, logger="circuits.relations.schema"):
        rel = load_relation(path, template="The capital of {} is")
    assert [(f.subject, f.object) for f in rel.facts] == [
        ("France", "Paris"),
        ("Japan", "Tokyo"),
        ("Peru", "Lima"),
    ]
    (record,) = caplog.records
    assert record.getMessage() == (
        f"relation caps (file {path}): 2 subjects have more than one object "
        "(France: Paris, Lyon; Peru: Lima, Cusco, Callao); the first is kept"
    )
    caplog.clear()
    path.write_text("France,Paris\nFrance,Paris\nJapan,Tokyo\n")  # the same fact twice: nothing is lost
    with caplog.at_level(logging.WARNING, logger="circuits.relations.schema"):
        assert len(load_relation(path, template="The capital of {} is").facts) == 2
    assert not caplog.records
