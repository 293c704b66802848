"""Relations, known facts, prompt pairs, roles, batches and their errors."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.relations import Fact, Relation, bundled_relations, load_relation, relation_from_csv
from circuits.relations.pairs import answer_token, batch_pairs, check_facts, make_pairs
from circuits.vocab import InputError, NotEnoughFactsError

ALL = 10**9  # a rank threshold every fact passes: tiny random models know nothing


def test_bundled_relations_follow_the_schema():
    names = bundled_relations()
    assert len(names) >= 12
    for name in names:
        rel = load_relation(name)
        assert len(rel.facts) >= 40, name
        assert set(rel.properties) >= {"relation_type", "domain_name", "range_name", "symmetric"}
        assert all(t.count("{}") == 1 for t in rel.prompt_templates + rel.prompt_templates_zs)


def _write(tmp_path, data, name="rel.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _lre(samples, templates=("The capital of {} is",)):
    return {
        "name": "test",
        "prompt_templates": list(templates),
        "prompt_templates_zs": [],
        "properties": {"relation_type": "factual", "domain_name": "a", "range_name": "b", "symmetric": False},
        "samples": samples,
    }


def test_user_lre_file_loads(tmp_path):
    path = _write(tmp_path, _lre([{"subject": "France", "object": "Paris"}]))
    rel = load_relation(path)
    assert rel.name == "rel"
    assert rel.facts == (Fact("France", "Paris"),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"samples": [', "malformed JSON at line 1"),
        ("[1, 2]", "top level must be an object"),
        ({"prompt_templates": ["The {} is"]}, "'samples' must be a list"),
        ({"prompt_templates": "The {} is", "samples": []}, "'prompt_templates' must be a non-empty list"),
        (
            {"prompt_templates": ["The capital is"], "samples": [{"subject": "a", "object": "b"}]},
            "exactly one '{}'",
        ),
        ({"prompt_templates": ["The {} is"], "samples": []}, "no facts"),
        ({"prompt_templates": ["The {} is"], "samples": [{"subject": "a"}]}, r"samples\[0\].object"),
    ],
)
def test_bad_lre_files_get_clear_errors(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(InputError, match=message) as info:
        load_relation(path)
    assert str(path) in str(info.value)


def test_unknown_relation_lists_the_bundled_ones():
    with pytest.raises(InputError, match="country"):
        load_relation("no_such_relation")


def test_csv_relation(tmp_path):
    path = _write(tmp_path, "subject,object\nFrance,Paris\nSpain,Madrid\n\n", "caps.csv")
    rel = relation_from_csv(path, "The capital of {} is")
    assert [f.subject for f in rel.facts] == ["France", "Spain"]
    assert rel.template == "The capital of {} is"
    with pytest.raises(InputError, match="exactly one"):
        relation_from_csv(path, "no placeholder")
    bad = _write(tmp_path, "France,Paris,extra\n", "bad.csv")
    with pytest.raises(InputError, match="line 1 has 3 columns"):
        relation_from_csv(bad, "{} is")


def test_pairs_have_equal_lengths_and_different_answers(tiny_gpt2):
    rel = load_relation("country_capital_city")
    pairs = make_pairs(tiny_gpt2, rel, max_rank=ALL, seed=1)
    assert len(pairs.pairs) >= 10
    for p in pairs.pairs:
        assert len(p.clean_tokens) == len(p.corrupt_tokens)
        assert p.answer != p.corrupt_answer
        assert p.fact != p.corrupt_fact
        assert p.answer == answer_token(tiny_gpt2, p.fact.object)


def test_pairs_are_deterministic_under_a_seed(tiny_gpt2):
    rel = load_relation("country_capital_city")
    a = make_pairs(tiny_gpt2, rel, max_rank=ALL, seed=7)
    b = make_pairs(tiny_gpt2, rel, max_rank=ALL, seed=7)
    c = make_pairs(tiny_gpt2, rel, max_rank=ALL, seed=8)
    assert [p.as_dict() for p in a.pairs] == [p.as_dict() for p in b.pairs]
    assert [p.as_dict() for p in a.pairs] != [p.as_dict() for p in c.pairs]


def test_split_is_seeded_and_disjoint(tiny_gpt2):
    rel = load_relation("country_capital_city")
    pairs = make_pairs(tiny_gpt2, rel, max_rank=ALL, heldout_fraction=0.25)
    scoring = {p.fact for p in pairs.scoring}
    heldout = {p.fact for p in pairs.heldout}
    assert not scoring & heldout
    # whole facts are held out (a fact has a pair per template): as many pairs as the fraction asks,
    # or a few more
    target = round(0.25 * len(pairs.pairs))
    assert target <= len(pairs.heldout) < target + len(pairs.formats)


def test_roles_locate_the_subject(tiny):
    rel = load_relation("country_capital_city")
    pairs = make_pairs(tiny, rel, max_rank=ALL, templates="first")
    for p in pairs.pairs[:10]:
        r = p.roles
        start, stop = r.subject
        subject_text = tiny.tokenizer.decode(list(p.clean_tokens[start:stop]))
        assert p.fact.subject in subject_text
        assert r.last_subject == stop - 1
        assert r.last == len(p.clean_tokens) - 1
        assert set(r.relation).isdisjoint(range(start, stop))
        demo = range(*r.demo)
        bos = [0] if tiny.prepend_bos else []  # the BOS token is the first role's alone
        assert sorted((*bos, *demo, *r.relation, *range(start, stop))) == list(range(len(p.clean_tokens)))
        # the template's own demonstration ("... Kenya is Nairobi.") is the demo role, ending at the full stop
        demo_text = tiny.tokenizer.decode(list(p.clean_tokens[: r.demo[1]]))
        assert demo_text.strip().endswith("Nairobi.") and "Kenya" in demo_text


def test_subjects_without_equal_length_counterfactual_are_skipped_and_counted(tiny_gpt2):
    facts = [
        Fact(s, o)
        for s, o in [
            ("France", "Paris"),
            ("Spain", "Madrid"),
            ("Italy", "Rome"),
            ("the United Kingdom of Great Britain and Northern Ireland", "London"),
        ]
    ]
    rel = Relation("t", "t", ("The capital of {} is",), (), {}, tuple(facts))
    pairs = make_pairs(tiny_gpt2, rel, max_rank=ALL, min_known=1)
    assert pairs.n_no_counterfactual >= 1
    assert len(pairs.pairs) == len(facts) - pairs.n_no_counterfactual


def test_too_few_known_facts_says_how_many(tiny_gpt2):
    rel = load_relation("country_capital_city")
    with pytest.raises(NotEnoughFactsError, match=r"knows 0 of \d+ facts.*at least 4"):
        make_pairs(tiny_gpt2, rel, min_prob=1.1)


def test_answer_that_tokenizes_to_nothing():
    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": []}

    class Model:
        tokenizer = Tok()
        name = "stub"

    with pytest.raises(InputError, match="tokenizes to nothing"):
        answer_token(Model(), "x")


def test_check_facts_ranks(tiny_gpt2):
    rel = load_relation("country_capital_city")
    checks = check_facts(tiny_gpt2, rel)
    assert len(checks) == len(rel.facts)
    assert all(c.rank >= 1 for c in checks)
    assert all(0 <= c.prob <= 1 for c in checks)
    assert all(c.known == (c.rank == 1) for c in checks)


def test_batches_pad_right_and_record_last_positions(tiny_gpt2):
    rel = load_relation("country_capital_city")
    pairs = make_pairs(tiny_gpt2, rel, max_rank=ALL).pairs
    lengths = {len(p.clean_tokens) for p in pairs}
    assert len(lengths) > 1  # the batch really mixes lengths
    batch = batch_pairs(pairs, pad=0)
    for i, p in enumerate(pairs):
        n = len(p.clean_tokens)
        assert batch.last[i] == n - 1
        assert batch.mask[i].sum() == n
        assert batch.clean[i, :n].tolist() == list(p.clean_tokens)
        assert batch.corrupt[i, :n].tolist() == list(p.corrupt_tokens)
    # right padding: a row's logits at its last position do not depend on the padding
    row = pairs[0]
    with torch.no_grad():
        alone = tiny_gpt2.bridge(torch.tensor([row.clean_tokens]))[0, -1]
        padded = tiny_gpt2.bridge(batch.clean[:1])[0, batch.last[0]]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.integration
def test_embedded_model_knows_enough_facts(smollm2):
    counts = {
        name: sum(c.known for c in check_facts(smollm2, load_relation(name))) for name in bundled_relations()
    }
    assert sum(n >= 20 for n in counts.values()) >= 10, counts
