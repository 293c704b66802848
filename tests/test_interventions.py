"""Interventions: node and edge edits, their checks against independent computations, their errors.

The commands (`circuits intervene`, `circuits reuse-test`) are in ``test_intervention_commands``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuits.attribution import Harness
from circuits.evaluate import Evaluator
from circuits.graph import GraphShape, edge_mask
from circuits.mechanisms.interventions import (
    Edit,
    edited_logits,
    intervene,
    node_hooks,
    parse_edits,
    scoring_means,
)
from circuits.mechanisms.lens import run_with_hooks
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, make_pairs
from circuits.vocab import Ablation, InputError, hook_point

ALL = 10**9  # every fact passes the known-fact filter: tiny random models know nothing
RELATION = "country_capital_city"


@pytest.fixture(scope="module")
def pair_sets(tiny_gpt2, tiny_llama, tiny_gemma):
    rel = load_relation(RELATION)
    return {
        m.name: make_pairs(m, rel, max_rank=ALL, max_pairs=8) for m in (tiny_gpt2, tiny_llama, tiny_gemma)
    }


def setup(model, pair_sets, split="heldout"):
    pairs = pair_sets[model.name]
    chosen = pairs.heldout if split == "heldout" else pairs.pairs
    return pairs, Harness(model), batch_pairs(chosen, pad=model.pad_id)


def every_node(model):
    return [f"a{layer}.h{h}" for layer in range(model.n_layers) for h in range(model.n_heads)] + [
        f"m{layer}" for layer in range(model.n_layers)
    ]


def z_of(model, tokens, layer):
    store = {}

    def grab(z, hook):
        store["z"] = z.detach().clone()
        return z

    run_with_hooks(model, tokens, [(hook_point("z", layer), grab)], stop_at=hook_point("final_in"))
    return store["z"]


# ------------------------------------------------------------------ edits that change nothing


def test_no_edits_and_scale_one_leave_every_prompt_unchanged(tiny, pair_sets):
    pairs = pair_sets[tiny.name]
    none = intervene(tiny, pairs, [], progress=False)
    assert none.n_prompts == len(pairs.heldout) == 3
    for metric in ("accuracy", "answer_prob", "logit_diff"):
        assert np.array_equal(none.before_values[metric], none.after_values[metric])
        assert none.change[metric].value == 0.0 and none.change[metric].low == none.change[metric].high == 0.0
    assert none.as_dict()["note"].startswith("no edits")

    ones = parse_edits(tiny, scale=[f"{n}=1" for n in every_node(tiny)])
    result = intervene(tiny, pairs, ones, split="all", progress=False)
    for metric in ("answer_prob", "logit_diff"):
        np.testing.assert_allclose(result.after_values[metric], result.before_values[metric], atol=1e-6)
    # an edge scaled by 1 goes through the patched forward and changes nothing either
    edges = parse_edits(tiny, scale=["a0.h1->logits=1", "m0->a1.h0<q>=1", "input->m1=1"])
    result = intervene(tiny, pairs, edges, progress=False)
    np.testing.assert_allclose(
        result.after_values["logit_diff"], result.before_values["logit_diff"], atol=1e-5
    )


# ------------------------------------------------------------------ node edits against hand-made hooks


def test_zero_ablating_a_head_is_zeroing_its_z_and_removing_its_output(tiny, pair_sets):
    _, harness, batch = setup(tiny, pair_sets)
    layer, head = 1, 2
    got = edited_logits(harness, batch, parse_edits(tiny, ablate=[f"a{layer}.h{head}:zero"]))

    def zero(z, hook):
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    tokens, last = batch.clean, batch.last
    by_hand = harness.last_logits(harness.run_to_final(tokens, [(hook_point("z", layer), zero)]), last)
    if harness.post_attn[layer] is None:
        torch.testing.assert_close(got, by_hand.float(), atol=1e-6, rtol=0)
    # the same as subtracting the head's output z_h W_O^h (through a norm after attention, at
    # the scale of this forward) from the attention output
    out = harness.head_writes(layer, z_of(tiny, tokens, layer))[:, :, head]
    minus = [(hook_point("attn_out", layer), lambda x, hook: x - out)]
    removed = harness.last_logits(harness.run_to_final(tokens, minus), last)
    torch.testing.assert_close(got, removed.float(), atol=1e-4, rtol=1e-4)
    if harness.post_attn[layer] is not None:  # zeroing z instead lets the norm rescale the other heads
        assert (got - by_hand).abs().max() > 1e-3
    assert (got - harness.last_logits(harness.run_to_final(tokens, []), last)).abs().max() > 1e-3


@pytest.mark.parametrize("node", ["a1.h1", "m0"])
def test_subspace_of_full_rank_is_zero_ablation_and_factor_one_is_nothing(tiny, pair_sets, node):
    _, harness, batch = setup(tiny, pair_sets)
    full = tiny.cfg.d_head if node.startswith("a") else min(tiny.bridge.blocks[0].mlp.W_out.shape)
    zero = edited_logits(harness, batch, parse_edits(tiny, ablate=[f"{node}:zero"]))
    removed = edited_logits(harness, batch, parse_edits(tiny, subspace=[f"{node}:{full}"]))
    torch.testing.assert_close(removed, zero, atol=1e-4, rtol=1e-4)
    clean = edited_logits(harness, batch, [])
    kept = edited_logits(harness, batch, parse_edits(tiny, subspace=[f"{node}:2=1"]))
    torch.testing.assert_close(kept, clean, atol=1e-5, rtol=1e-5)
    assert (zero - clean).abs().max() > 1e-3


def test_subspace_removes_exactly_the_top_ov_directions(tiny_llama):
    from circuits.channels.svd import factored_svd, head_weights, ov_matrices

    model, layer, head, rank = tiny_llama, 1, 3, 3
    tokens = torch.randint(1, 200, (2, 9), generator=torch.Generator().manual_seed(0))
    V = factored_svd(ov_matrices(head_weights(model, dtype=torch.float64))[layer, head]).Vh  # [d_head, d]
    W_O = model.bridge.blocks[layer].attn.W_O[head].detach().double()
    half = node_hooks(model, parse_edits(model, subspace=[f"a{layer}.h{head}:{rank}=0.5"]))
    store = {}

    def grab(z, hook):
        store["z"] = z.detach().clone()
        return z

    run_with_hooks(model, tokens, [*half, (hook_point("z", layer), grab)], stop_at=hook_point("final_in"))
    before = z_of(model, tokens, layer)[:, :, head].double() @ W_O
    after = store["z"][:, :, head].double() @ W_O
    top, rest = V[:rank], V[rank:]
    # the top-rank components are halved, the others untouched
    torch.testing.assert_close(after @ top.T, 0.5 * (before @ top.T), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after @ rest.T, before @ rest.T, atol=1e-4, rtol=1e-4)
    assert (before @ top.T).abs().max() > 1e-2


@pytest.mark.parametrize("mode", ["zero", "mean", "counterfactual"])
def test_a_last_layer_node_equals_ablating_all_its_outgoing_edges(tiny, pair_sets, mode):
    """A last-layer head sends only to its MLP and the logits, the last MLP only to the logits."""
    pairs, harness, batch = setup(tiny, pair_sets)
    means = scoring_means(harness, pairs)
    last = tiny.n_layers - 1
    for node, receivers in ((f"a{last}.h2", [f"m{last}", "logits"]), (f"m{last}", ["logits"])):
        as_node = edited_logits(harness, batch, parse_edits(tiny, ablate=[f"{node}:{mode}"]), means=means)
        edges = parse_edits(tiny, ablate=[f"{node}->{r}:{mode}" for r in receivers])
        as_edges = edited_logits(harness, batch, edges, means=means)
        torch.testing.assert_close(as_node, as_edges, atol=1e-4, rtol=1e-4)


def test_counterfactual_on_every_edge_into_the_logits_is_the_corrupt_run(tiny, pair_sets):
    _, harness, batch = setup(tiny, pair_sets, split="all")
    senders = GraphShape.of(tiny).sender_names()
    edits = parse_edits(tiny, ablate=[f"{s}->logits:counterfactual" for s in senders])
    got = edited_logits(harness, batch, edits)
    corrupt = harness.last_logits(harness.run_to_final(batch.corrupt, []), batch.last).float()
    torch.testing.assert_close(got, corrupt, atol=1e-4, rtol=1e-4)
    clean = edited_logits(harness, batch, [])
    assert (clean - corrupt).abs().max() > 1e-3  # the check is not vacuous


@pytest.mark.parametrize("mode", ["counterfactual", "mean"])
def test_one_edge_ablation_matches_the_evaluator_without_that_edge(tiny_llama, pair_sets, mode):
    pairs, harness, batch = setup(tiny_llama, pair_sets)
    means = scoring_means(harness, pairs)
    evaluator = Evaluator(harness, batch, metric="logit-diff", ablation=mode, means=means)
    shape = harness.shape
    senders, receivers = shape.sender_names(), shape.receiver_names()
    for edge in ("a0.h1->a2.h0<v>", "m0->logits", "input->a1.h2<q>", "a1.h3->m1"):
        src, dst = edge.split("->")
        keep = edge_mask(shape).copy()
        keep[senders.index(src), receivers.index(dst)] = False
        expected = evaluator.run_mask(keep).metric
        result = intervene(
            tiny_llama, pairs, parse_edits(tiny_llama, ablate=[f"{edge}:{mode}"]), progress=False
        )
        assert result.after["logit_diff"].value == pytest.approx(expected, abs=1e-4), edge
        assert result.before["logit_diff"].value == pytest.approx(evaluator.full.metric, abs=1e-4)


def test_node_and_edge_edits_combine(tiny_llama, pair_sets):
    """An edge reads the edited output: with a0.h1 zeroed, ablating a0.h1->m2 to zero adds nothing."""
    _, harness, batch = setup(tiny_llama, pair_sets)
    node = edited_logits(harness, batch, parse_edits(tiny_llama, ablate=["a0.h1:zero"]))
    both = edited_logits(harness, batch, parse_edits(tiny_llama, ablate=["a0.h1:zero", "a0.h1->m2:zero"]))
    torch.testing.assert_close(both, node, atol=1e-5, rtol=1e-5)
    edge = edited_logits(harness, batch, parse_edits(tiny_llama, scale=["a0.h1->m2=3"]))
    mixed = edited_logits(harness, batch, parse_edits(tiny_llama, scale=["a0.h1->m2=3", "m1=0.5"]))
    assert (mixed - edge).abs().max() > 1e-4


def test_node_hooks_work_on_any_tokens(tiny_llama, pair_sets):
    pairs, harness, _ = setup(tiny_llama, pair_sets)
    means = scoring_means(harness, pairs)
    edits = parse_edits(
        tiny_llama, scale=["a0.h0=0.5"], ablate=["m1:mean", "a2.h3:zero"], subspace=["a1.h1:2"]
    )
    hooks = node_hooks(tiny_llama, edits, means=means)
    for shape in ((1, 3), (5, 17)):
        tokens = torch.randint(1, 200, shape, generator=torch.Generator().manual_seed(1))
        edited, clean = run_with_hooks(tiny_llama, tokens, hooks), run_with_hooks(tiny_llama, tokens, [])
        assert edited.shape == clean.shape and (edited - clean).abs().max() > 1e-3
    # the mean ablation writes the scoring mean at every position
    store = {}
    run_with_hooks(
        tiny_llama, tokens, [*hooks, (hook_point("mlp_out", 1), lambda x, hook: store.setdefault("m", x))]
    )
    torch.testing.assert_close(store["m"][0, 5], means[GraphShape.of(tiny_llama).mlp_sender(1)])
    cf = node_hooks(
        tiny_llama, parse_edits(tiny_llama, ablate=["a1.h0:counterfactual"]), corrupt_tokens=tokens
    )
    with pytest.raises(InputError, match="counterfactual values were computed on a batch of shape"):
        run_with_hooks(tiny_llama, tokens[:, :4], cf)
    with pytest.raises(InputError, match="needs the corrupt prompts' tokens"):
        node_hooks(tiny_llama, parse_edits(tiny_llama, ablate=["a1.h0:counterfactual"]))


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"scale": ["a1.h9=0"]},
            "head 9 of 'a1.h9' is out of range (the model has heads 0..3 per layer); "
            "closest: a1.h0, a1.h1, a1.h2, a1.h3",
        ),
        ({"ablate": ["a7.h0"]}, "layer 7 of 'a7.h0' is out of range (the model has layers 0..2)"),
        ({"ablate": ["mlp1"]}, "'mlp1' is not a node name"),
        ({"scale": ["a1.h0"]}, "malformed; --scale takes NODE=F or SRC->DST=F"),
        ({"scale": ["a1.h0=big"]}, "F must be a number, not 'big'"),
        ({"scale": ["a1.h0=nan"]}, "F must be a finite number"),
        (
            {"ablate": ["a1.h0:resample"]},
            "unknown ablation mode 'resample'; valid: counterfactual, mean, zero",
        ),
        ({"subspace": ["a1.h0:9"]}, "RANK must lie in 1..8 (d_head of a1.h0), not 9"),
        ({"subspace": ["a1.h0:0"]}, "RANK must lie in 1..8"),
        ({"subspace": ["a1.h0:two"]}, "RANK must be a whole number"),
        ({"subspace": ["a1.h0"]}, "malformed; --subspace takes NODE:RANK[=F]"),
        ({"subspace": ["a0.h1->m1:2"]}, "not an edge"),
        ({"ablate": ["a2.h0->m1"]}, "a2.h0->m1 is not an edge of the graph"),
        (
            {"ablate": ["a0.h0->a1.h3<k>"]},
            "head 3 of 'a1.h3<k>' is out of range (the model has key/value heads 0..1",
        ),
        ({"scale": ["a1.h0<q>=0"]}, "is a head's input, not a node"),
        ({"scale": ["a1.h0=0"], "ablate": ["a1.h0"]}, "a1.h0 is edited twice"),
    ],
)
def test_errors_say_what_is_wrong_and_what_is_close(tiny_llama, kwargs, message):
    with pytest.raises(InputError) as error:
        parse_edits(tiny_llama, **kwargs)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_edits_print_as_their_specs(tiny_llama):
    edits = parse_edits(
        tiny_llama,
        scale=["m2=0.25", "a0.h1->logits=2"],
        ablate=["a1.h0", "a0.h0->a2.h1<v>:zero"],
        subspace=["m1:4=0.5"],
    )
    assert [str(e) for e in edits] == [
        "scale m2=0.25",
        "scale a0.h1->logits=2",
        "ablate a1.h0:mean",
        "ablate a0.h0->a2.h1<v>:zero",
        "subspace m1:4=0.5",
    ]
    assert edits[2] == Edit("ablate", "a1.h0", ablation=Ablation.MEAN)
    assert parse_edits(tiny_llama, scale=[str(edits[0]).removeprefix("scale ")]) == edits[:1]
