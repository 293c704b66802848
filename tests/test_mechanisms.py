"""Knockout, enrichment and extraction, proven by real interventions on tiny models (and SmolLM2)."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from conftest import run_cli

from circuits.jobs.mechanisms import PromptChoice, known_prompts
from circuits.mechanisms.attention_knockout import _blocking_hooks, knockout
from circuits.mechanisms.attribute_extraction import extraction
from circuits.mechanisms.attributes import attribute_tokens, attribute_words
from circuits.mechanisms.lens import FrozenNorm, decode, run_with_hooks
from circuits.mechanisms.subject_enrichment import enrichment
from circuits.relations.pairs import Roles
from circuits.relations.roles import ROLES, parse_source_sets, role_positions, source_positions
from circuits.uncertainty import bootstrap_means, mean_interval
from circuits.vocab import InputError, hook_point

ALL = PromptChoice(max_pairs=6, max_rank=10**9)


@pytest.fixture(scope="module")
def prompts_of():
    cache = {}

    def get(model, relation="country_capital_city", choice=ALL):
        key = (model.name, relation, choice)
        if key not in cache:
            cache[key] = known_prompts(model, relation, choice)[0]
        return cache[key]

    return get


def answer_prob(model, tokens, last, answer, hooks=()):
    logits = run_with_hooks(model, tokens, list(hooks))
    probs = logits[torch.arange(len(last)), last].float().softmax(-1)
    return probs[torch.arange(len(last)), answer]


# ------------------------------------------------------------ roles


def test_roles_partition_every_position_before_the_last():
    roles = Roles((3, 5), 4, (0, 1, 2, 5, 6, 7), 7)
    parts = role_positions(roles)
    flat = sorted(p for r in ROLES for p in parts[r])
    assert flat == list(range(8))
    assert parts["first"] == [0] and parts["subject"] == [3, 4] and parts["last"] == [7]


def test_a_subject_at_the_start_leaves_no_sink_and_a_subject_at_the_end_is_not_the_last():
    start = role_positions(Roles((0, 2), 1, (2, 3), 3))
    assert start["first"] == [] and start["subject"] == [0, 1]
    end = Roles((2, 3), 2, (0, 1), 2)  # a one-token subject that is the last token
    assert source_positions(end, ("subject",)) is None
    assert source_positions(end, ("first", "last")) == [0, 2]


def test_source_sets_parse_and_reject_unknown_roles():
    assert parse_source_sets("subject, relation+last") == [("subject",), ("relation", "last")]
    assert parse_source_sets(["all"]) == [ROLES]
    with pytest.raises(
        InputError, match=r"unknown role 'objct'.*valid roles: first, demo, subject, relation, last"
    ):
        parse_source_sets("subject,objct")
    with pytest.raises(InputError, match="empty source set"):
        parse_source_sets("subject,,last")


# ------------------------------------------------------------ bootstrap


def test_bootstrap_of_a_constant_has_zero_width_and_covers_the_mean():
    mean, low, high = bootstrap_means(np.full((12, 4), 0.25))
    assert np.all(mean == 0.25) and np.all(low == 0.25) and np.all(high == 0.25)
    sample = np.random.default_rng(1).normal(size=40)
    iv = mean_interval(sample, seed=3)
    assert iv.low < sample.mean() < iv.high and iv.value == pytest.approx(sample.mean())
    assert mean_interval(sample, seed=3) == iv  # seeded


def test_bootstrap_leaves_missing_values_out_of_their_column():
    values = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 2.0]])
    mean, low, high = bootstrap_means(values)
    assert mean.tolist() == [3.0, 2.0] and low[1] == high[1] == 2.0


# ------------------------------------------------------------ knockout


def test_zero_layer_window_and_empty_source_set_reproduce_the_baseline_exactly(tiny, prompts_of):
    prompts = prompts_of(tiny)
    none = knockout(tiny, prompts, window=0, sources=[ROLES], progress=False)
    assert np.all(none.curves[0].per_prompt == 0.0)
    empty = knockout(tiny, prompts, sources=[()], progress=False)
    assert empty.curves[0].source == "none" and np.all(empty.curves[0].per_prompt == 0.0)


def test_blocking_every_source_at_every_layer_changes_every_prediction(tiny, prompts_of):
    prompts = prompts_of(tiny)
    result = knockout(tiny, prompts, window=tiny.n_layers, sources=[ROLES], progress=False)
    assert result.curves[0].starts == [0]
    assert np.all(np.abs(result.curves[0].per_prompt) > 1e-4)


def test_resumed_knockout_forward_equals_a_full_forward_with_the_same_hooks(tiny, prompts_of):
    """The knockout starts at the window's first layer; a full forward from the tokens must agree."""
    prompts = prompts_of(tiny)
    window, source = 1, ("subject", "relation")
    result = knockout(tiny, prompts, window=window, sources=[source], progress=False)
    blocked = torch.zeros(prompts.tokens.shape, dtype=torch.bool)
    for i, roles in enumerate(prompts.roles):
        blocked[i, source_positions(roles, source)] = True
    base = answer_prob(tiny, prompts.tokens, prompts.last, prompts.answer)
    for w, start in enumerate(result.curves[0].starts):
        fully = torch.zeros(len(prompts), dtype=torch.bool)
        hooks = _blocking_hooks(range(start, start + window), blocked, prompts.last, fully)
        knocked = answer_prob(tiny, prompts.tokens, prompts.last, prompts.answer, hooks)
        expected = ((knocked - base) / base).double().numpy()
        np.testing.assert_allclose(result.curves[0].per_prompt[:, w], expected, rtol=1e-4, atol=1e-6)


def test_last_token_that_sees_only_itself_computes_as_if_it_were_alone(tiny_llama, prompts_of):
    """With rotary positions, attending only to itself in every layer makes the last token's
    computation that of a one-token prompt: a reference that shares no code with the hooks."""
    prompts = prompts_of(tiny_llama)
    before_last = tuple(r for r in ROLES if r != "last")
    result = knockout(tiny_llama, prompts, window=tiny_llama.n_layers, sources=[before_last], progress=False)
    base = answer_prob(tiny_llama, prompts.tokens, prompts.last, prompts.answer)
    alone = prompts.tokens[torch.arange(len(prompts)), prompts.last][:, None]
    p_alone = answer_prob(tiny_llama, alone, torch.zeros(len(prompts), dtype=torch.long), prompts.answer)
    np.testing.assert_allclose(
        result.curves[0].per_prompt[:, 0], ((p_alone - base) / base).double().numpy(), rtol=1e-4, atol=1e-6
    )


def test_grouped_query_blocking_is_per_query_head(tiny_llama, prompts_of):
    prompts = prompts_of(tiny_llama)
    seen = {}
    everything = torch.ones(prompts.tokens.shape, dtype=torch.bool)
    hooks = _blocking_hooks(range(1), everything, prompts.last, torch.ones(len(prompts), dtype=torch.bool))

    def pattern(x, hook):
        seen["pattern"] = x.detach().clone()
        return x

    run_with_hooks(tiny_llama, prompts.tokens, [*hooks, (hook_point("pattern", 0), pattern)])
    last_rows = seen["pattern"][torch.arange(len(prompts)), :, prompts.last]  # [batch, heads, key]
    assert last_rows.shape[1] == tiny_llama.n_heads > tiny_llama.n_kv_heads
    assert torch.all(last_rows == 0)  # every query head of the group reads nothing
    other = seen["pattern"][0, :, 1, :2]
    assert torch.allclose(other.sum(-1), torch.ones(tiny_llama.n_heads))  # other queries untouched


def test_knockout_rejects_a_window_longer_than_the_model(tiny_gpt2, prompts_of):
    with pytest.raises(InputError, match=r"--window must lie in \[0, 2\] for tiny-gpt2"):
        knockout(tiny_gpt2, prompts_of(tiny_gpt2), window=3, progress=False)


def test_prompts_with_an_empty_role_are_skipped_and_counted(tiny_llama, tmp_path):
    csv = tmp_path / "pets.csv"
    csv.write_text("subject,object\ny,meow\nk,woof\nhe,moo\ncat,woof\ndog,moo\ncow,cluck\n")
    # the subject ends the prompt: a one-token subject is the last token, so its subject role is empty
    prompts, _ = known_prompts(
        tiny_llama, csv, PromptChoice(template="The sound of the {}", max_rank=10**9, shots=0)
    )
    one_token = [
        t for t, r in zip(prompts.texts, prompts.roles, strict=True) if r.subject[1] - r.subject[0] == 1
    ]
    assert 0 < len(one_token) < len(prompts)
    curve = knockout(tiny_llama, prompts, sources=[("subject",)], progress=False).curves[0]
    assert sorted(curve.skipped) == sorted(one_token) and curve.n_prompts == len(prompts) - len(one_token)
    assert curve.per_prompt.shape[0] == curve.n_prompts
    # the subject starts the prompt: there is no separate first token anywhere
    prompts, _ = known_prompts(
        tiny_llama, csv, PromptChoice(template="{} makes the sound", max_rank=10**9, shots=0)
    )
    with pytest.raises(InputError, match="source set 'first': every prompt has an empty role"):
        knockout(tiny_llama, prompts, sources=[("first",)], progress=False)


# ------------------------------------------------------------ lens and extraction


def test_frozen_norm_is_the_norm_without_its_bias_and_is_linear(tiny):
    x = torch.randn(5, int(tiny.cfg.d_model))
    norm = tiny.bridge.ln_final
    frozen = FrozenNorm(norm, x)
    inner = getattr(norm, "original_component", norm)
    bias = getattr(inner, "bias", None)
    expected = inner(x) - (bias if bias is not None else 0)
    torch.testing.assert_close(frozen(x), expected, rtol=1e-5, atol=1e-5)
    parts = torch.randn(5, 3, x.shape[-1])
    torch.testing.assert_close(
        frozen(parts, per_component=True).sum(1), frozen(parts.sum(1)), rtol=1e-4, atol=1e-5
    )


def test_logit_lens_of_the_last_residual_stream_is_the_models_output(tiny, prompts_of):
    prompts = prompts_of(tiny)
    logits, cache = tiny.bridge.run_with_cache(prompts.tokens)
    last_resid = cache[hook_point("resid_post", tiny.n_layers - 1)]
    torch.testing.assert_close(decode(tiny, last_resid), logits.float(), rtol=1e-4, atol=1e-4)


def test_extraction_event_where_the_answer_is_the_sublayers_top_token(tiny, prompts_of):
    """Set each prompt's answer to the top token of layer 0's MLP output: the rate there must be 1."""
    prompts = prompts_of(tiny)
    _, cache = tiny.bridge.run_with_cache(prompts.tokens)
    rows = torch.arange(len(prompts))
    final = cache[hook_point("final_in")][rows, prompts.last]
    mlp0 = cache[hook_point("mlp_out", 0)][rows, prompts.last]
    projected = FrozenNorm(tiny.bridge.ln_final, final)(mlp0) @ tiny.bridge.W_U.float()
    target = projected.argmax(-1)
    rigged = dataclasses.replace(prompts, answer=target)
    result = extraction(tiny, rigged, progress=False)
    assert result.mlp_rate[0].value == 1.0 and result.mlp_rate[0].low == 1.0
    attn0 = cache[hook_point("attn_out", 0)][rows, prompts.last]
    attn_top = (FrozenNorm(tiny.bridge.ln_final, final)(attn0) @ tiny.bridge.W_U.float()).argmax(-1)
    assert result.attn_rate[0].value == pytest.approx(float((attn_top == target).float().mean()))


def test_head_ranks_come_from_the_heads_own_output(tiny_gpt2, prompts_of):
    prompts = prompts_of(tiny_gpt2)
    result = extraction(tiny_gpt2, prompts, progress=False)
    assert len(result.heads) == tiny_gpt2.n_layers * tiny_gpt2.n_heads
    _, cache = tiny_gpt2.bridge.run_with_cache(prompts.tokens)
    rows = torch.arange(len(prompts))
    z = cache[hook_point("z", 1)][rows, prompts.last][:, 2]  # head a1.h2
    out = z @ tiny_gpt2.bridge.blocks[1].attn.W_O[2]
    logits = FrozenNorm(tiny_gpt2.bridge.ln_final, cache[hook_point("final_in")][rows, prompts.last])(out)
    logits = logits @ tiny_gpt2.bridge.W_U.float()
    ranks = (logits > logits[rows, prompts.answer][:, None]).sum(-1) + 1
    assert result.head("a1.h2").median_rank == pytest.approx(
        float(ranks.float().median(0).values.item()) if len(ranks) % 2 else float(np.median(ranks))
    )


# ------------------------------------------------------------ enrichment


def test_attribute_sets_come_from_every_bundled_relation():
    words = attribute_words()
    assert {"Paris", "French", "Europe", "euro"} <= words["France"]
    assert "France" in words["Eiffel Tower"]

    def first(word):
        return word.split()[0]

    tokens = attribute_tokens(["Paris", "the", "France", "X"], "France", first)
    assert tokens == frozenset({"paris"})


def test_attribute_rate_and_mlp_removal_match_a_cached_reference(tiny, prompts_of):
    prompts = prompts_of(tiny)
    rows = torch.arange(len(prompts))
    last_subject = torch.tensor([r.last_subject for r in prompts.roles])
    _, cache = tiny.bridge.run_with_cache(prompts.tokens)
    after0 = cache[hook_point("resid_post", 0)][rows, last_subject]
    before_mlp0 = after0 - cache[hook_point("mlp_out", 0)][rows, last_subject]

    def decoded(resid):
        return [
            [tiny.tokenizer.decode([int(t)]).strip().lower() for t in row]
            for row in decode(tiny, resid).topk(10, dim=-1).indices
        ]

    # each subject's "attributes" are some of the tokens it decodes to after layer 0
    clean_top = decoded(after0)
    attrs = {s: set(top[::2]) for s, top in zip(prompts.subjects, clean_top, strict=True)}
    result = enrichment(tiny, prompts, attrs, top_k=10, split=1, progress=False)
    present = [
        i
        for i, s in enumerate(prompts.subjects)
        if attribute_tokens(
            attrs[s],
            s,
            lambda w: tiny.tokenizer.decode(
                tiny.tokenizer(" " + w, add_special_tokens=False)["input_ids"][:1]
            ),
        )
    ]
    assert result.provenance.n_prompts == len(present) > 0
    assert result.rates["clean"][0].value > 0
    removed_top = decoded(before_mlp0)

    def rate(tops, shift=0):
        sets = [
            attribute_tokens(
                attrs[prompts.subjects[i]],
                prompts.subjects[i],
                lambda w: tiny.tokenizer.decode(
                    tiny.tokenizer(" " + w, add_special_tokens=False)["input_ids"][:1]
                ),
            )
            for i in present
        ]
        sets = sets[shift:] + sets[:shift]
        return float(np.mean([sum(t in s for t in tops[i]) / 10 for i, s in zip(present, sets, strict=True)]))

    assert result.rates["clean"][0].value == pytest.approx(rate(clean_top))
    assert result.rates["mlp-early"][0].value == pytest.approx(rate(removed_top))
    assert result.rates["null"][0].value == pytest.approx(rate(clean_top, shift=1))


# ------------------------------------------------------------ the embedded model


@pytest.mark.integration
def test_smollm2_knockout_of_everything_flips_predictions_and_subject_matters(smollm2):
    prompts, _ = known_prompts(smollm2, "country_capital_city", PromptChoice(max_pairs=6))
    everything = knockout(smollm2, prompts, window=smollm2.n_layers, sources=[ROLES, ()], progress=False)
    assert np.all(everything.curves[0].per_prompt < -0.9)  # the answer loses > 90% of its probability
    assert np.all(everything.curves[1].per_prompt == 0.0)
    result = knockout(smollm2, prompts, window=6, sources=[("subject",)], progress=False)
    start, effect = result.curves[0].strongest()
    assert effect.high < -0.5, (start, effect)


def test_records_are_strict_json_and_figures_are_svg(tiny_llama):
    from circuits.jobs.analyses import run_analysis
    from circuits.registry import ANALYSES

    for name in ("knockout", "enrichment", "extraction"):
        record, files = run_analysis(name, tiny_llama, "country_capital_city", ALL, progress=False)
        data = record.to_dict()
        json.dumps(data, allow_nan=False)
        assert data["prompts"]["max_pairs"] == 6 and len(data["prompts"]["subjects"]) == 6
        assert data["analysis_version"] == ANALYSES[name].version >= 1 and files == []
        assert type(record).from_dict(json.loads(json.dumps(data))).to_dict() == data
        assert ET.fromstring(ANALYSES[name].draw(record)).tag.endswith("svg")


# ------------------------------------------------------------ the commands

TINY = ["--model", "tiny-llama", "--max-rank", "1000000000", "--max-pairs", "6", "--boot", "50"]


@pytest.mark.parametrize(
    ("command", "name"),
    [("knockout", "knockout"), ("enrichment", "enrichment"), ("attribute-extraction", "extraction")],
)
def test_commands_write_json_and_a_figure_for_a_bundled_relation(capsys, tmp_path, command, name):
    code, out, _ = run_cli(capsys, command, "country_capital_city", *TINY, "--json", "--out", str(tmp_path))
    assert code == 0
    record = json.loads(out)
    assert record["analysis"] == name and record["model"] == "tiny-llama" and record["n_boot"] == 50
    assert json.loads((tmp_path / f"{name}.json").read_text()) == record
    assert ET.parse(tmp_path / f"{name}.svg").getroot().tag.endswith("svg")


def test_the_old_extraction_command_still_works_and_says_it_is_deprecated(capsys):
    """``circuits extraction`` (attribute extraction) is now ``attribute-extraction``, so that it is not
    mistaken for ``circuits extract`` (circuit extraction); the old name works for one version."""
    code, out, err = run_cli(capsys, "extraction", "country_capital_city", *TINY, "--top", "3", "--quiet")
    assert code == 0, err
    assert err.strip().splitlines() == [
        "circuits extraction: deprecated: the command is now `circuits attribute-extraction` "
        "('extraction' goes away in the next version)"
    ]
    assert "top 3 heads by the answer's median rank" in out
    code, new, err = run_cli(
        capsys, "attribute-extraction", "country_capital_city", *TINY, "--top", "3", "--quiet"
    )
    assert code == 0 and "deprecated" not in err and new == out


def test_commands_work_on_an_lre_file_never_seen(capsys, tmp_path, river_lre):
    lre = river_lre
    for command in ("knockout", "enrichment", "attribute-extraction"):
        code, out, err = run_cli(capsys, command, str(lre), *TINY)
        assert code == 0, err
        assert "tiny-llama / river_country:" in out and "(8 of 8 facts known)" in out
    code, out, _ = run_cli(
        capsys,
        "knockout",
        str(lre),
        *TINY,
        "--sources",
        "subject+relation,last",
        "--block-first",
        "--window",
        "2",
    )
    assert (
        "strongest for subject+relation: layers 0-1" in out
        or "strongest for subject+relation: layers 1-2" in out
    )
    assert "strongest for first" in out


def test_command_errors_name_what_was_wrong(capsys, tmp_path):
    code, _, err = run_cli(capsys, "knockout", "country_capital_city", *TINY, "--window", "4")
    assert code == 2 and "--window must lie in [0, 3] for tiny-llama" in err
    code, _, err = run_cli(capsys, "knockout", "country_capital_city", *TINY, "--sources", "subject,verb")
    assert code == 2 and "unknown role 'verb'" in err
    not_lre = tmp_path / "scores.json"
    not_lre.write_text(json.dumps({"edges": {}}))
    code, _, err = run_cli(capsys, "enrichment", str(not_lre), *TINY)
    assert code == 2 and str(not_lre) in err and "samples" in err


def test_store_puts_the_analyses_beside_the_relations_circuits_and_in_the_manifest(capsys, tmp_path):
    from circuits.store import Gallery

    for command in ("knockout", "enrichment"):
        code, _, _ = run_cli(capsys, command, "country_capital_city", *TINY, "--store", str(tmp_path))
        assert code == 0
    folder = tmp_path / "tiny-llama" / "country_capital_city" / "mechanisms"
    assert sorted(p.name for p in folder.iterdir()) == [
        "enrichment.json",
        "enrichment.svg",
        "knockout.json",
        "knockout.svg",
    ]
    gallery = Gallery(tmp_path)
    entry = gallery.manifest()["entries"]["tiny-llama/country_capital_city/mechanisms"]
    assert entry["kind"] == "mechanisms" and entry["analyses"] == ["enrichment", "knockout"]
    rebuilt = gallery.rebuild_manifest()["entries"]["tiny-llama/country_capital_city/mechanisms"]
    assert rebuilt["analyses"] == ["enrichment", "knockout"] and rebuilt["date"] == entry["date"]
