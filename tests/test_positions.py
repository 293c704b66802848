"""Position-aware scores and circuits: units (edge, role), checked by real interventions on tiny models."""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np
import pytest
import torch
from conftest import random_batch

from circuits.attribution import Harness, attribute_edges
from circuits.attribution.scoring import exact_edges
from circuits.evaluate import Evaluator
from circuits.graph import N_ROLES, GraphShape, ScoredGraph
from circuits.relations.roles import ROLES
from circuits.vocab import InputError


def with_roles(batch):
    """``random_batch`` with roles: position 0 first, the changed span subject, the last position last."""
    pos = batch.clean.shape[1]
    role = torch.full((len(batch), pos), ROLES.index("relation"))
    role[:, 0] = ROLES.index("first")
    role[:, 1:3] = ROLES.index("subject")
    for b, last in enumerate(batch.last.tolist()):
        role[b, last] = ROLES.index("last")
        role[b, last + 1 :] = -1
    return dataclasses.replace(batch, role=role)


def test_role_scores_sum_over_roles_to_the_summed_scores(tiny):
    batch = with_roles(random_batch(tiny, changed=(1, 4)))
    harness = Harness(tiny)
    for per_pair in (False, True):
        summed = attribute_edges(harness, batch, ig_steps=2, per_pair=per_pair)
        by_role = attribute_edges(harness, batch, ig_steps=2, per_pair=per_pair, by_role=True)
        assert by_role.shape[-3] == N_ROLES
        torch.testing.assert_close(by_role.sum(-3), summed, rtol=1e-5, atol=1e-6 * summed.abs().max().item())
    # the corrupted span covers subject and relation positions: both roles carry scores, first none
    parts = by_role.abs().sum((0, 2, 3))
    assert parts[ROLES.index("first")] == 0
    assert parts[ROLES.index("subject")] > 0 and parts[ROLES.index("relation")] > 0


def test_role_scores_need_roles():
    from circuits.models import load_model

    model = load_model("tiny-gpt2")
    with pytest.raises(InputError, match="position roles"):
        attribute_edges(Harness(model), random_batch(model), by_role=True)


def test_all_units_give_the_clean_metric_and_none_the_corrupted(tiny):
    batch = with_roles(random_batch(tiny, changed=(1, 4)))
    evaluator = Evaluator(Harness(tiny), batch)
    mask = evaluator.mask.cpu().numpy()
    every = np.broadcast_to(mask, (N_ROLES, *mask.shape)).copy()
    assert evaluator.run_mask(every).metric == pytest.approx(evaluator.full.metric, abs=1e-5)
    assert evaluator.run_mask(np.zeros_like(every)).metric == pytest.approx(evaluator.empty.metric, abs=1e-5)
    assert abs(evaluator.full.metric - evaluator.empty.metric) > 1e-3
    # the same edges kept at every role are the summed circuit
    rng = np.random.default_rng(0)
    some = mask & (rng.random(mask.shape) < 0.5)
    same = np.broadcast_to(some, every.shape).copy()
    assert evaluator.run_mask(same).metric == pytest.approx(evaluator.run_mask(some).metric, abs=1e-5)
    assert evaluator.run_mask(same).n_edges == N_ROLES * int(some.sum())


def test_removing_one_unit_is_exact_patching_of_that_unit(tiny):
    """The circuit forward without one (edge, role) unit changes the metric by
    that unit's exact patching score."""
    batch = with_roles(random_batch(tiny, changed=(1, 4)))
    harness = Harness(tiny)
    evaluator = Evaluator(harness, batch)
    scores = (attribute_edges(harness, batch, by_role=True) / len(batch)).numpy()
    graph = ScoredGraph(harness.shape, scores.sum(0), role_scores=scores)
    every = np.broadcast_to(graph.mask, scores.shape).copy()
    for flat in graph.ranked(by="abs", positions="roles")[:6]:
        role, s, r = np.unravel_index(int(flat), scores.shape)
        keep = every.copy()
        keep[role, s, r] = False
        change = evaluator.run_mask(keep).metric - evaluator.full.metric
        (exact,) = exact_edges(harness, batch, [(int(s), int(r), int(role))])
        assert change == pytest.approx(exact, rel=1e-4, abs=1e-6)


def test_unit_attribution_agrees_with_exact_patching_for_small_corruptions(tiny):
    batch = with_roles(random_batch(tiny, changed=(1, 4)))
    harness = Harness(tiny)
    clean_senders, _ = harness.senders(batch.clean)
    corrupt_senders, _ = harness.senders(batch.corrupt)
    ablated = clean_senders + 1e-3 * (corrupt_senders - clean_senders)
    scores = (attribute_edges(harness, batch, ablated=ablated, by_role=True) / len(batch)).numpy()
    graph = ScoredGraph(harness.shape, scores.sum(0), role_scores=scores)
    top = graph.ranked(by="abs", positions="roles")[:25]
    units = [np.unravel_index(int(i), scores.shape) for i in top]
    assert len({int(role) for role, _, _ in units}) > 1  # the check spans several roles
    exact = exact_edges(
        harness, batch, [(int(s), int(r), int(role)) for role, s, r in units], ablated=ablated
    )
    approx = np.array([scores[u] for u in units])
    np.testing.assert_allclose(exact, approx, rtol=2e-2, atol=2e-2 * np.abs(approx).max())


def test_a_mask_of_the_wrong_shape_is_refused(tiny_gpt2):
    batch = with_roles(random_batch(tiny_gpt2))
    evaluator = Evaluator(Harness(tiny_gpt2), batch)
    mask = evaluator.mask.cpu().numpy()
    with pytest.raises(InputError, match=r"\(edge, role\) units"):
        evaluator.run_mask(np.zeros((2, *mask.shape), dtype=bool))
    no_roles = Evaluator(Harness(tiny_gpt2), random_batch(tiny_gpt2))
    with pytest.raises(InputError, match="position roles"):
        no_roles.run_mask(np.zeros((N_ROLES, *mask.shape), dtype=bool))


def test_a_scored_relation_keeps_its_role_scores_through_the_store(tiny_llama):
    from circuits import ScoreSettings, load_scored, save_scored, score_relation

    settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9, positions="roles")
    graph, _ = score_relation(tiny_llama, "country_capital_city", settings, progress=False)
    assert graph.positions == "roles" and graph.metadata["positions"] == "roles"
    np.testing.assert_allclose(graph.role_scores.sum(0), graph.scores, rtol=1e-5, atol=1e-7)
    assert graph.pair_scores.edges.max() >= graph.mask.size  # pair scores index units beyond role 0
    back = load_scored(save_scored(tempfile.mkdtemp(), graph))
    assert np.array_equal(back.role_scores, graph.role_scores) and back.positions == "roles"
    assert np.array_equal(back.pair_scores.edges, graph.pair_scores.edges)
    summed = ScoredGraph(graph.shape, graph.scores)
    with pytest.raises(InputError, match="--positions roles"):
        summed.ranked(positions="roles")
    with pytest.raises(InputError, match="positions must be"):
        ScoreSettings(positions="tokens")


def role_graph(model):
    from circuits import ScoreSettings, heldout_evaluator, score_relation

    settings = ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9, positions="roles")
    graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    return graph, heldout_evaluator(model, graph, pairs)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_pruning_units_keeps_faithfulness(name, tiny_gpt2, tiny_llama):
    """Units off every input -> logits path (by role reachability) change nothing when removed.

    Not on a model with a norm after attention: there a head off every path still moves its layer's
    norm scale (test_evaluate's coupling test), so pruning is exact only up to that."""
    from circuits.extract.masks import prune_mask

    tiny = {"tiny-gpt2": tiny_gpt2, "tiny-llama": tiny_llama}[name]
    graph, evaluator = role_graph(tiny)
    rng = np.random.default_rng(1)
    every = np.broadcast_to(graph.mask, (N_ROLES, *graph.mask.shape))
    dropped = 0
    for share in (0.1, 0.3, 0.6):
        keep = every & (rng.random(every.shape) < share)
        pruned = prune_mask(graph.shape, keep)
        assert not (pruned & ~keep).any()
        dropped += int(keep.sum() - pruned.sum())
        assert evaluator.run_mask(pruned).metric == pytest.approx(evaluator.run_mask(keep).metric, abs=1e-5)
    assert dropped > 0


def test_extraction_on_units(tiny_llama):
    from circuits.extract import extract
    from circuits.store import circuit_from_json, circuit_to_json

    graph, evaluator = role_graph(tiny_llama)
    for method in ("top-n", "greedy"):
        circuit = extract(graph, method, size=30)
        assert circuit.positions == "roles" and 0 < circuit.n_units <= 30
        assert circuit.n_edges <= circuit.n_units
        assert circuit_from_json(circuit_to_json(circuit)) == circuit
        mask = circuit.to_unit_mask()
        assert int(mask.sum()) == circuit.n_units
        for (sender, receiver), kept in circuit.roles.items():
            assert circuit.edges[(sender, receiver)] == pytest.approx(sum(kept.values()), abs=1e-6)
        assert sum(circuit.role_counts().values()) == circuit.n_units
    top = extract(graph, "top-n", size=30, pruned=False)
    best = graph.ranked(by="signed", positions="roles")[:30]
    assert set(np.flatnonzero(top.to_unit_mask())) == set(best.tolist())
    minimal = extract(graph, "minimal", target=0.6, evaluate=evaluator)
    assert minimal.faithfulness >= 0.6 and minimal.positions == "roles"
    assert evaluator.run_mask(minimal.to_unit_mask()).faithfulness == pytest.approx(minimal.faithfulness)
    summed = extract(graph, "top-n", size=30, positions="summed")
    assert summed.positions == "summed" and summed.roles is None
    with pytest.raises(InputError, match="positions 'roles'"):
        extract(graph, "paths", size=3)


def test_circuit_json_refuses_bad_roles():
    from circuits.circuit import Circuit
    from circuits.graph import GraphShape
    from circuits.store import circuit_from_json, circuit_to_json

    shape = GraphShape(1, 1, 1)
    with pytest.raises(InputError, match="unknown roles"):
        Circuit(shape, {("input", "logits"): 0.0}, roles={("input", "logits"): {"object": 1.0}})
    with pytest.raises(InputError, match="kept at no role"):
        Circuit(shape, {("input", "logits"): 0.0}, roles={("input", "logits"): {}})
    circuit = Circuit(
        shape, {("input", "logits"): 0.0}, roles={("input", "logits"): {"last": -1.0, "first": 0.5}}
    )
    assert circuit.edges[("input", "logits")] == -0.5 and list(circuit.roles[("input", "logits")]) == [
        "first",
        "last",
    ]
    text = circuit_to_json(circuit, indent=None)
    with pytest.raises(InputError, match="needs 'roles'"):
        circuit_from_json(text.replace('"roles": {', '"places": {'))
    with pytest.raises(InputError, match="positions must be"):
        circuit_from_json(text.replace('"positions": "roles"', '"positions": "tokens"'))


def test_similarities_and_shared_core_count_units():
    from circuits.compare.families import shared_core, specific_parts
    from circuits.compare.similarity import compare
    from circuits.graph import GraphShape

    shape = GraphShape(1, 1, 1)
    edge, other = ("input", "logits"), ("a0.h0", "logits")
    a = role_circuit(shape, {edge: {"last": -1.0, "subject": -0.5}, other: {"last": -2.0}}, "a")
    b = role_circuit(shape, {edge: {"last": -3.0}}, "b")
    result = compare(a, b)
    assert result["common_units"] == 1 and result["units_a"] == 3 and result["units_b"] == 1
    assert result["edge_jaccard"] == pytest.approx(1 / 3)  # by edges it would be 1/2
    assert result["edge_overlap"] == 1.0
    assert result["weighted_jaccard"] == pytest.approx(1.0 / (3.0 + 0.5 + 2.0))
    core = shared_core([a, b])
    assert core.roles == {edge: {"last": -2.0}}
    assert specific_parts([a, b])["a"].units() == {(*edge, "subject"), (*other, "last")}
    assert specific_parts([a, b])["b"].n_units == 0


def role_circuit(shape, roles, name):
    from circuits.circuit import Circuit

    return Circuit(shape, dict.fromkeys(roles, 0.0), roles=roles, name=name)


def test_noise_references_redraw_unit_circuits(tiny_llama):
    from circuits import ScoreSettings, score_relation
    from circuits.compare.ceilings import NoiseSettings, family_noise
    from circuits.compare.noise import redraw_bootstrap
    from circuits.extract import pruned_top_n

    settings = ScoreSettings(ig_steps=2, max_pairs=10, max_rank=10**9, positions="roles")
    graphs = {
        r: score_relation(tiny_llama, r, settings, progress=False)[0]
        for r in ("country_capital_city", "country_currency")
    }
    draws = redraw_bootstrap(graphs["country_capital_city"], 20, "signed", n_boot=5)
    assert all(d.circuit.positions == "roles" and 0 < d.circuit.n_units <= 20 for d in draws)
    # a redraw with every pair at weight 1 is the graph's own pruned top-n unit circuit
    own = pruned_top_n(graphs["country_capital_city"], 20, positions="roles")
    from circuits.compare.noise import Redraws, pair_rows

    rows = pair_rows(graphs["country_capital_city"])
    again = Redraws(rows, 20, "signed").draw(np.ones(rows.n_pairs)).circuit
    assert again.units() == own.units()
    circuits = {r: pruned_top_n(g, 20, positions="roles") for r, g in graphs.items()}
    family = family_noise(graphs, circuits, ["edge_jaccard"], settings=NoiseSettings(20, 4, 5, 0))
    sim = family.pairs[("country_capital_city", "country_currency")]["edge_jaccard"]
    assert 0.0 <= sim.interval.value <= 1.0 and sim.null is not None
    summed = score_relation(
        tiny_llama,
        "country_language",
        ScoreSettings(ig_steps=2, max_pairs=10, max_rank=10**9),
        progress=False,
    )[0]
    from circuits.compare.noise import pooled_rows

    with pytest.raises(InputError, match="cannot be pooled"):
        pooled_rows(graphs["country_capital_city"], summed)


def test_cross_task_faithfulness_of_a_unit_circuit(tiny_llama):
    from circuits import ScoreSettings, heldout_evaluator, score_relation
    from circuits.compare.cross_task import cross_task_faithfulness
    from circuits.extract import pruned_top_n

    settings = ScoreSettings(ig_steps=2, max_pairs=10, max_rank=10**9, positions="roles")
    graph_a, _ = score_relation(tiny_llama, "country_capital_city", settings, progress=False)
    graph_b, pairs_b = score_relation(tiny_llama, "country_currency", settings, progress=False)
    circuit = pruned_top_n(graph_a, 25, positions="roles")
    evaluator = heldout_evaluator(tiny_llama, graph_b, pairs_b)
    result = cross_task_faithfulness(circuit, graph_b, evaluator)
    assert result.n_edges == circuit.n_units
    assert result.transferred == pytest.approx(evaluator.run_mask(circuit.to_unit_mask()).faithfulness)
    own = pruned_top_n(graph_b, 25, positions="roles")
    assert result.own == pytest.approx(evaluator.run_mask(own.to_unit_mask()).faithfulness)


def test_a_stored_unit_circuit_is_drawn_in_role_lanes(tiny_llama, tmp_path):
    from circuits import ScoreSettings, save_scored, score_relation
    from circuits.jobs.extraction import extract_stored, load_circuit, render_circuit_file

    settings = ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9, positions="roles")
    graph, pairs = score_relation(tiny_llama, "country_capital_city", settings, progress=False)
    folder = save_scored(tmp_path / "scored", graph, pairs.relation)
    circuit, where, _ = extract_stored(folder, size=20, store=tmp_path / "gallery", evaluate=True, n_boot=0)
    assert circuit.positions == "roles" and where.name.endswith("-roles")
    dot = next(
        (where / f"circuit.{ext}").read_text()
        for ext in ("svg", "dot")
        if (where / f"circuit.{ext}").is_file()
    )
    present = [role for role in ROLES if f"__{role}" in dot]
    assert present and set(present) == {role for role, n in circuit.role_counts().items() if n}
    assert load_circuit(where) == circuit
    drawn = render_circuit_file(where / "circuit.json", out=tmp_path / "again")
    assert "__last" in drawn.written[0].read_text()


def test_exporting_a_unit_circuit_to_mib_is_refused():
    from circuits.store.mib_json import to_mib_json

    circuit = role_circuit(GraphShape(1, 1, 1), {("input", "logits"): {"last": -1.0}}, "u")
    with pytest.raises(InputError, match="no position roles"):
        to_mib_json(circuit)


def test_compare_files_skips_intervals_when_a_unit_circuit_sits_beside_a_summed_graph(tiny_llama, tmp_path):
    from circuits import ScoreSettings, save_scored, score_relation
    from circuits.compare.ceilings import NoiseSettings
    from circuits.extract import pruned_top_n
    from circuits.jobs.extraction import compare_files
    from circuits.store import write_circuit

    summed = ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9)
    graph, pairs = score_relation(tiny_llama, "country_capital_city", summed, progress=False)
    folder = save_scored(tmp_path / "scored", graph, pairs.relation)
    roles_settings = dataclasses.replace(summed, positions="roles")
    roles, _ = score_relation(tiny_llama, "country_capital_city", roles_settings, progress=False)
    a = write_circuit(pruned_top_n(roles, 15, positions="roles"), folder / "a.circuit.json")
    b = write_circuit(pruned_top_n(roles, 25, positions="roles"), folder / "b.circuit.json")
    result = compare_files(a, b, noise=NoiseSettings(10, 2, 2, 0))
    assert "differ in positions" in result["noise"]["skipped"]
    assert result["common_units"] <= min(result["units_a"], result["units_b"])
