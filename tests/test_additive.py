"""Per-source direct logit attribution, head classes and the additive motif, checked on tiny models."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from conftest import run_cli

from circuits.attribution.harness import Harness
from circuits.jobs.mechanisms import PromptChoice, known_prompts
from circuits.mechanisms.direct_effects import last_position
from circuits.mechanisms.lens import FrozenNorm, run_with_hooks
from circuits.mechanisms.motif import GROUPS, additive_motif, candidate_answers
from circuits.mechanisms.per_source_dla import Thresholds, role_masks, source_attribution
from circuits.relations.roles import ROLES, role_positions
from circuits.vocab import InputError, head_name, hook_point

ALL = PromptChoice(max_pairs=6, max_rank=10**9)


@pytest.fixture(scope="module")
def prompts_of():
    cache = {}

    def get(model, relation="country_capital_city"):
        if (model.name, relation) not in cache:
            cache[(model.name, relation)] = known_prompts(model, relation, ALL)
        return cache[(model.name, relation)]

    return get


def final_logits(model, prompts):
    logits = run_with_hooks(model, prompts.tokens, [])
    return logits[prompts.rows(), prompts.last].float()


@pytest.mark.parametrize("direction", ["answer", "logit-diff"])
def test_per_source_dla_sums_to_the_heads_dla(tiny, prompts_of, direction):
    prompts, _ = prompts_of(tiny)
    lp = last_position(tiny, prompts, direction=direction)
    heads = lp.head_effects()
    assert heads.abs().max() > 1e-3  # the check is not between zeros
    torch.testing.assert_close(lp.per_source.sum(-1), heads, atol=1e-5, rtol=1e-4)
    # positions after the last one are never read
    for b, last in enumerate(prompts.last.tolist()):
        assert torch.all(lp.per_source[b, ..., last + 1 :] == 0)


def test_direct_effects_add_up_to_the_models_logits(tiny, prompts_of):
    prompts, _ = prompts_of(tiny)
    lp = last_position(tiny, prompts)
    logits = final_logits(tiny, prompts)
    direct = lp.logits(lp.vectors.sum(1, keepdim=True))[:, 0] + lp.constant
    torch.testing.assert_close(direct, logits, atol=1e-4, rtol=1e-4)
    centred = logits - logits.mean(1, keepdim=True)
    answer = centred[prompts.rows(), prompts.answer]
    constant = (lp.constant - lp.constant.mean())[prompts.answer]
    torch.testing.assert_close(lp.effects().sum(1) + constant, answer, atol=1e-4, rtol=1e-4)


def test_a_roles_dla_is_what_the_head_loses_when_its_attention_to_that_role_is_removed(tiny, prompts_of):
    """Zero one head's attention weights from the last position to the subject (no renormalisation):
    its output changes by exactly the subject part, whose direct effect is the subject role's DLA."""
    prompts, _ = prompts_of(tiny)
    layer, head = tiny.n_layers - 1, 1
    result = source_attribution(tiny, prompts, n_boot=20)
    lp = result.last
    masks = role_masks(prompts, prompts.tokens.shape[1])
    subject = masks[:, ROLES.index("subject")]
    rows, last = prompts.rows(), prompts.last
    kept = {}

    def drop_subject(pattern, hook):
        pattern = pattern.clone()
        pattern[rows, head, last] *= 1 - subject
        return pattern

    def keep_z(z, hook):
        kept["z"] = z[rows, last, head].float()
        return z

    def keep_all_z(z, hook):
        kept["clean"] = z[rows, last].float()
        return z

    run_with_hooks(tiny, prompts.tokens, [(hook_point("z", layer), keep_all_z)])
    run_with_hooks(
        tiny, prompts.tokens, [(hook_point("pattern", layer), drop_subject), (hook_point("z", layer), keep_z)]
    )
    W_O = tiny.bridge.blocks[layer].attn.W_O[head].detach().float()
    # through a norm after attention, at the clean run's scale (the direct effects' frozen scale)
    scale = Harness(tiny).write_scale(layer, kept["clean"])
    written = kept["z"] @ W_O if scale is None else (kept["z"] @ W_O) * scale
    without = torch.einsum("bd,bd->b", written, lp.pulled)
    whole = lp.head_effects()[:, layer, head]
    by_role = torch.einsum("bs,bs->b", lp.per_source[:, layer, head], subject)
    torch.testing.assert_close(whole - without, by_role, atol=1e-5, rtol=1e-4)
    assert by_role.abs().max() > 1e-4
    mean_subject = result.head(head_name(layer, head)).by_role["subject"].value
    assert mean_subject == pytest.approx(float(by_role.mean()), abs=1e-6)


def test_head_classes_follow_the_thresholds():
    t = Thresholds()
    assert t.classify({"first": 0.0, "subject": 0.8, "relation": 0.2, "last": 0.0}) == "subject"
    assert t.classify({"first": 0.1, "subject": 0.1, "relation": 0.75, "last": 0.05}) == "relation"
    assert t.classify({"first": 0.2, "subject": 0.4, "relation": 0.3, "last": 0.1}) == "mixed"
    assert t.classify({"first": 0.6, "subject": 0.2, "relation": 0.2, "last": 0.0}) == "other"
    assert Thresholds(subject_share=0.3).classify(
        {"first": 0, "subject": 0.35, "relation": 0.4, "last": 0}
    ) == ("subject")
    with pytest.raises(InputError, match=r"mixed-share must be a share in \[0, 1\], not 1.5"):
        Thresholds(mixed_share=1.5)


def test_only_active_heads_are_classified_and_shares_add_up(tiny_llama, prompts_of):
    prompts, _ = prompts_of(tiny_llama)
    result = source_attribution(tiny_llama, prompts, n_boot=50, thresholds=Thresholds(min_share=0.0))
    for h in result.heads:
        if h.head_class is not None:
            assert h.dla.value > 0 and h.dla.low > 0
        if any(v > 0 for v in h.shares.values()):
            assert sum(h.shares.values()) == pytest.approx(1.0)
    strict = source_attribution(tiny_llama, prompts, n_boot=50, thresholds=Thresholds(min_share=1.0))
    assert len(strict.classes()) <= 1  # only a head carrying all the positive DLA could qualify


def test_motif_ranks_the_sum_like_the_model_and_an_empty_group_last(tiny, prompts_of):
    prompts, pairs = prompts_of(tiny)
    lp = last_position(tiny, prompts)
    candidates = candidate_answers(tiny, pairs.relation)
    heads = [head_name(0, 0), head_name(1, 0)]
    result = additive_motif(
        lp, {heads[0]: "subject", heads[1]: "relation"}, prompts.answer, candidates, n_boot=50
    )
    logits = final_logits(tiny, prompts)[:, candidates]
    index = torch.tensor([candidates.index(int(a)) for a in prompts.answer])
    model_rank = (logits >= logits.gather(1, index[:, None])).sum(1)
    assert result.ranks[:, -1].tolist() == model_rank.tolist()
    assert np.all(result.ranks[:, GROUPS.index("mixed heads")] == len(candidates))  # empty group
    assert result.members["subject heads"] == [heads[0]] and len(result.members["MLPs"]) == tiny.n_layers
    first = result.ranks == 1
    assert result.motif.value == pytest.approx(float(np.mean(~first[:, :-1].any(1) & first[:, -1])))
    total = sum(result.contribution[g].value for g in GROUPS)
    assert total == pytest.approx(result.contribution["sum"].value, abs=1e-4)


def test_motif_needs_the_answer_direction_and_known_candidates(tiny_llama, prompts_of):
    prompts, _ = prompts_of(tiny_llama)
    with pytest.raises(InputError, match="direction 'answer'"):
        additive_motif(last_position(tiny_llama, prompts, direction="logit-diff"), {}, prompts.answer, [1, 2])
    with pytest.raises(InputError, match="not among the relation's candidate answers"):
        additive_motif(last_position(tiny_llama, prompts), {}, prompts.answer, [int(prompts.answer[0]) + 1])


def test_roles_used_by_dla_partition_the_prompt(tiny_llama, prompts_of):
    prompts, _ = prompts_of(tiny_llama)
    masks = role_masks(prompts, prompts.tokens.shape[1])
    for b, roles in enumerate(prompts.roles):
        assert masks[b].sum(0)[: int(prompts.last[b]) + 1].tolist() == [1.0] * (int(prompts.last[b]) + 1)
        assert masks[b, ROLES.index("subject")].nonzero()[:, 0].tolist() == role_positions(roles)["subject"]


def test_frozen_norm_pullback_is_exact(tiny_gpt2, prompts_of):
    prompts, _ = prompts_of(tiny_gpt2)
    lp = last_position(tiny_gpt2, prompts)
    c = torch.randn(len(prompts), lp.vectors.shape[-1])
    norm = FrozenNorm(tiny_gpt2.bridge.ln_final, lp.vectors.sum(1))
    W_U = tiny_gpt2.bridge.W_U.detach().float()
    u = (W_U - W_U.mean(1, keepdim=True))[:, prompts.answer].T
    torch.testing.assert_close((norm(c) * u).sum(-1), (c * lp.pulled).sum(-1), atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------ the commands

TINY = ["--model", "tiny-llama", "--max-rank", "1000000000", "--max-pairs", "6", "--boot", "50"]


@pytest.mark.parametrize("command", ["dla", "motif"])
def test_commands_write_strict_json_and_a_figure(capsys, tmp_path, command):
    code, out, err = run_cli(capsys, command, "country_capital_city", *TINY, "--json", "--out", str(tmp_path))
    assert code == 0, err
    record = json.loads(out)
    assert record["analysis"] == command and record["n_prompts"] == 6
    assert json.loads((tmp_path / f"{command}.json").read_text()) == record
    assert ET.parse(tmp_path / f"{command}.svg").getroot().tag.endswith("svg")


def test_commands_work_on_an_lre_file_never_seen(capsys, tmp_path, river_lre):
    lre = river_lre
    code, out, err = run_cli(capsys, "dla", str(lre), *TINY, "--direction", "logit-diff", "--top", "3")
    assert code == 0, err
    assert "tiny-llama / river_country:" in out and "logit difference" in out
    assert "subject heads:" in out and "mixed heads:" in out
    code, out, err = run_cli(capsys, "motif", str(lre), *TINY)
    assert code == 0, err
    assert "additive motif" in out and "candidate answers" in out


def test_command_errors_name_what_was_wrong(capsys):
    code, _, err = run_cli(capsys, "dla", "country_capital_city", *TINY, "--subject-share", "2")
    assert code == 2 and "argument --subject-share: must be a number in [0, 1], not '2'" in err
    code, _, err = run_cli(capsys, "dla", "country_capital_city", *TINY, "--direction", "sideways")
    assert code == 2 and "argument --direction: invalid choice: 'sideways'" in err


# ------------------------------------------------------------ final-layer suppression


def test_suppressors_are_negative_on_most_prompts_of_most_relations():
    from circuits.mechanisms.suppressors import DirectEffect, choose_suppressors
    from circuits.uncertainty import Interval

    def c(name, value, share):
        return DirectEffect(name, Interval(value, value, value), share)

    effects = {
        "r1": [c("m9", -1.0, 0.9), c("a9.h0", -0.2, 0.6), c("a9.h1", 0.5, 0.1)],
        "r2": [c("m9", -0.5, 0.8), c("a9.h0", 0.3, 0.4), c("a9.h1", -0.1, 0.7)],
        "r3": [c("m9", 0.1, 0.4), c("a9.h0", -0.4, 0.7), c("a9.h1", 0.2, 0.3)],
    }
    assert choose_suppressors(effects, majority=0.5, relations_share=0.5) == ["m9", "a9.h0"]
    assert choose_suppressors(effects, majority=0.5, relations_share=1.0) == []
    assert choose_suppressors(effects, majority=0.85, relations_share=0.3) == ["m9"]


def test_text_loss_is_the_mean_next_token_cross_entropy(tiny_llama):
    from circuits.mechanisms.suppressors import text_loss

    texts = ["The capital of France is Paris", "Rome"]
    losses = text_loss(tiny_llama, texts)
    for text, loss in zip(texts, losses, strict=True):
        ids = torch.tensor([tiny_llama.encode(text)])
        logits = run_with_hooks(tiny_llama, ids, [])[0].float()
        expected = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:])
        assert loss == pytest.approx(float(expected), rel=1e-5)


def test_mitigation_with_alpha_one_changes_nothing_and_alpha_zero_does(tiny_llama):
    from circuits.jobs.analyses import run_analysis
    from circuits.records.suppression import SuppressionSettings

    choice = PromptChoice(max_pairs=10, max_rank=10**9, templates="first")
    kw = {"last_layers": 1, "majority": 0.0, "relations_share": 0.0, "n_control": 6, "n_boot": 20}

    def run_suppression(alpha):
        settings = SuppressionSettings(alpha=alpha, **kw)
        record, _ = run_analysis(
            "suppression", tiny_llama, ["country_capital_city"], choice, settings, progress=False
        )
        return record, record.to_dict()

    same, record = run_suppression(1.0)
    assert same.suppressors  # with these thresholds every negative-on-average component qualifies
    m = same.mitigation["country_capital_city"]
    assert all(np.array_equal(m.before_values[k], m.after_values[k]) for k in m.before_values)
    assert same.control["change"].value == 0.0
    cut, record = run_suppression(0.0)
    m = cut.mitigation["country_capital_city"]
    assert not np.array_equal(m.before_values["answer_prob"], m.after_values["answer_prob"])
    assert cut.control["change"].value != 0.0
    json.dumps(record, allow_nan=False)
    # the effects are the components' direct effects on the scoring prompts
    from circuits.jobs.mechanisms import choice_pairs
    from circuits.mechanisms.lens import Prompts

    pairs = choice_pairs(tiny_llama, "country_capital_city", choice, heldout_fraction=0.4)
    lp = last_position(tiny_llama, Prompts.of(pairs.scoring, tiny_llama.pad_id))
    first = record["effects"]["country_capital_city"][0]
    assert first["component"] == head_name(tiny_llama.n_layers - 1, 0)
    expected = lp.effects()[:, lp.index(first["component"])]
    assert first["effect"]["value"] == pytest.approx(float(expected.mean()), abs=1e-5)
    assert first["negative_share"] == pytest.approx(float((expected < 0).float().mean()), abs=1e-4)


def test_suppression_errors_name_what_was_wrong(capsys):
    code, _, err = run_cli(capsys, "suppression", "country_capital_city", *TINY, "--alpha", "1.5")
    assert code == 2 and "argument --alpha: must be a number in [0, 1], not '1.5'" in err
    code, _, err = run_cli(capsys, "suppression", "country_capital_city", *TINY, "--last-layers", "9")
    assert code == 2 and "--last-layers must lie in [1, 3] for tiny-llama, not 9" in err


def test_suppression_command_on_two_relations_and_an_lre_file(capsys, tmp_path, river_lre):
    lre = river_lre
    code, out, err = run_cli(
        capsys,
        "suppression",
        "country_capital_city",
        str(lre),
        *TINY,
        "--max-pairs",
        "8",
        "--control",
        "4",
        "--json",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["relations"] == ["country_capital_city", "river_country"]
    assert set(record["mitigation"]["river_country"]["before"]) == {"accuracy", "answer_prob"}
    assert record["control"]["n_texts"] == 4
    assert ET.parse(tmp_path / "out" / "suppression.svg").getroot().tag.endswith("svg")


def test_every_public_mechanism_name_is_the_object_not_its_module():
    import types

    import circuits.mechanisms as mechanisms

    for name in mechanisms.__all__:
        assert not isinstance(getattr(mechanisms, name), types.ModuleType), name
