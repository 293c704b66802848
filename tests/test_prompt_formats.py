"""Few-shot prompts from a relation's own facts, every template, the template choice,
small-sample warnings."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from circuits import ScoreSettings, heldout_evaluator, load_relation, make_pairs, score_relation
from circuits.relations.pairs import remake_pairs
from circuits.relations.prompts import RESCUE_KNOWN, PromptFormat, default_shots, split_template
from circuits.relations.roles import role_positions
from circuits.relations.samples import MIN_HELDOUT, MIN_SCORING, sample_warning
from circuits.relations.schema import Fact, Relation, relation_to_json
from circuits.relations.survey import survey_prompts
from circuits.vocab import InputError, NotEnoughFactsError

ALL = 10**9
PLAIN = "The capital of {} is"


def plain_relation(n: int | None = None) -> Relation:
    """The bundled capitals with only a plain zero-shot template (no demonstration of its own)."""
    rel = load_relation("country_capital_city")
    facts = rel.facts if n is None else rel.facts[:n]
    return Relation("plain_capitals", "plain", (PLAIN, "{} has its capital in"), (), {}, facts, "<test>")


def demo_tokens(pair) -> list[int]:
    return list(pair.clean_tokens[pair.roles.demo[0] : pair.roles.demo[1]])


# ------------------------------------------------------------ demonstrations


@pytest.mark.parametrize("shots", [1, 3])
def test_demonstrations_come_from_other_facts_and_never_hold_either_answer(tiny, shots):
    pairs = make_pairs(tiny, plain_relation(), templates="first", shots=shots, max_rank=ALL)
    assert len(pairs.pairs) > 20
    for p in pairs.pairs:
        assert len(p.demos) == shots
        assert p.fact not in p.demos and p.corrupt_fact not in p.demos
        assert p.fact.subject not in {d.subject for d in p.demos}
        demo = demo_tokens(p)
        assert p.answer not in demo and p.corrupt_answer not in demo  # no answer leaked into the context
        # the same demonstrations, token for token, in the clean and the counterfactual prompt
        assert (
            p.corrupt_tokens[: len(demo) + p.roles.demo[0]] == p.clean_tokens[: len(demo) + p.roles.demo[0]]
        )
        assert p.clean_text.startswith(
            " ".join(f"The capital of {d.subject} is {d.object}." for d in p.demos)
        )
        assert p.clean_text.endswith(PLAIN.replace("{}", p.fact.subject))
        assert p.corrupt_text.endswith(PLAIN.replace("{}", p.corrupt_fact.subject))


def test_an_answer_shared_with_a_demonstration_takes_another_demonstration(tiny):
    facts = [
        Fact("Austria", "German"),
        Fact("Germany", "German"),
        Fact("France", "French"),
        Fact("Spain", "Spanish"),
        Fact("Italy", "Italian"),
        Fact("Portugal", "Portuguese"),
    ]
    rel = Relation("lang", "lang", ("The language of {} is",), (), {}, tuple(facts), "<test>")
    pairs = make_pairs(tiny, rel, shots=2, max_rank=ALL, min_known=2)
    for p in pairs.pairs:
        objects = {d.object for d in p.demos}
        assert p.fact.object not in objects and p.corrupt_fact.object not in objects


@pytest.mark.parametrize("shots", [1, 3])
def test_demonstration_tokens_are_their_own_role(tiny, shots):
    pairs = make_pairs(tiny, plain_relation(), templates="first", shots=shots, max_rank=ALL)
    for p in pairs.pairs[:12]:
        parts = role_positions(p.roles)
        n = len(p.clean_tokens)
        assert sorted(i for r in parts.values() for i in r) == list(range(n))  # a partition
        prefix = tiny.tokenizer.decode(list(p.clean_tokens[: p.roles.demo[1]]))
        assert prefix.strip().endswith(
            p.demos[-1].object + "."
        )  # the demo role ends with the last demonstration
        query = tiny.tokenizer.decode(list(p.clean_tokens[p.roles.demo[1] :]))
        assert query.strip() == PLAIN.replace("{}", p.fact.subject)
        subject = tiny.tokenizer.decode(list(p.clean_tokens[slice(*p.roles.subject)]))
        assert subject.strip() == p.fact.subject
        relation_text = tiny.tokenizer.decode([p.clean_tokens[i] for i in parts["relation"]])
        assert relation_text.split() == ["The", "capital", "of"]  # the query's own words only


def test_zero_shots_leave_the_prompt_as_the_template(tiny):
    pairs = make_pairs(tiny, plain_relation(), templates="first", shots=0, max_rank=ALL)
    for p in pairs.pairs:
        assert p.demos == () and p.roles.demo == (0, 0)
        assert p.clean_text == PLAIN.replace("{}", p.fact.subject)


def test_default_shots_follow_the_template_and_are_recorded(tiny):
    assert split_template("Kenya is in Africa. {} is in the continent of") == (
        "Kenya is in Africa. ",
        "{} is in the continent of",
    )
    assert default_shots(PLAIN) == 1 and default_shots(load_relation("country_capital_city").template) == 0
    pairs = make_pairs(tiny, plain_relation(), templates="first", max_rank=ALL)
    assert {len(p.demos) for p in pairs.pairs} == {1}
    record = pairs.prompt_record()
    assert record["formats"] == [{"template": PLAIN, "shots": 1}] and record["shots"] is None


def test_demonstrations_are_seeded_and_mostly_shared(tiny):
    one = make_pairs(tiny, plain_relation(), templates="first", shots=2, max_rank=ALL, seed=4)
    two = make_pairs(tiny, plain_relation(), templates="first", shots=2, max_rank=ALL, seed=4)
    other = make_pairs(tiny, plain_relation(), templates="first", shots=2, max_rank=ALL, seed=5)
    assert [p.clean_text for p in one.pairs] == [p.clean_text for p in two.pairs]
    assert [p.demos for p in one.pairs] != [p.demos for p in other.pairs]
    demos = [p.demos for p in one.pairs]
    most = max(set(demos), key=demos.count)
    assert demos.count(most) > 0.8 * len(demos)  # one fixed order: most prompts share their demonstrations


def test_too_few_facts_for_the_shots_is_counted_not_faked(tiny):
    with pytest.raises(NotEnoughFactsError, match="knows 0 of 4 facts with 5-shot"):
        make_pairs(tiny, plain_relation(4), templates="first", shots=5, max_rank=ALL)


# ------------------------------------------------------------ templates


def test_all_templates_give_pairs_per_template_with_their_own_roles_and_split_by_fact(tiny):
    rel = plain_relation()
    pairs = make_pairs(tiny, rel, templates="all", max_rank=ALL)
    assert [f.template for f in pairs.formats] == list(rel.prompt_templates)
    used = {p.template for p in pairs.pairs}
    assert used == set(rel.prompt_templates)
    assert len(pairs.pairs) > len(rel.facts)  # a fact counts once per template
    assert [r["n_known"] for r in pairs.per_format] == [len(rel.facts)] * 2
    assert not {p.fact for p in pairs.scoring} & {p.fact for p in pairs.heldout}
    for p in pairs.pairs[:20]:
        query = tiny.tokenizer.decode(list(p.clean_tokens[p.roles.demo[1] :])).strip()
        assert query == p.template.replace("{}", p.fact.subject)
        assert p.clean_text.endswith(p.template.replace("{}", p.fact.subject))
        assert p.corrupt_text.endswith(p.template.replace("{}", p.corrupt_fact.subject))


def test_a_template_index_and_a_bad_index(tiny):
    pairs = make_pairs(tiny, plain_relation(), templates=1, max_rank=ALL)
    assert {p.template for p in pairs.pairs} == {"{} has its capital in"}
    with pytest.raises(InputError, match=r"has 2 templates \(0 to 1\); there is no template 2"):
        make_pairs(tiny, plain_relation(), templates=2, max_rank=ALL)
    with pytest.raises(InputError, match="give best, first, all, or a template index"):
        make_pairs(tiny, plain_relation(), templates="some", max_rank=ALL)


def test_best_keeps_the_templates_that_know_at_least_half_as_many_facts_as_the_best(tiny_llama):
    rel = load_relation("country_capital_city")
    rank = 100  # of a random model's 1024 tokens: the templates know different numbers of facts
    rows = survey_prompts(tiny_llama, rel, shots=(0,), pick_shots=0, max_rank=rank)
    counts = [r["n_known"] for r in rows]
    top = max(counts)
    assert len(set(counts)) > 1 and any(0 < 2 * c < top for c in counts), "the check needs a weak template"
    kept = [PromptFormat(r["template"], 0) for r in rows if 2 * r["n_known"] >= top]
    assert [PromptFormat(r["template"], 0) for r in rows if r["default"]] == kept
    pairs = make_pairs(tiny_llama, rel, shots=0, max_rank=rank, min_known=1)
    assert list(pairs.formats) == kept and len(kept) < len(rel.prompt_templates)
    assert [r["n_known"] for r in pairs.per_format] == counts
    assert {p.template for p in pairs.pairs} <= {f.template for f in kept}
    assert pairs.prompt_record()["formats"] == [f.as_dict() for f in kept]


def test_best_tries_three_shots_when_the_defaults_leave_too_few_known_facts(tiny_llama):
    rel = load_relation("country_capital_city")
    rank = 100
    pairs = make_pairs(tiny_llama, rel, max_rank=rank, min_known=1)
    tried = {(r["template"], r["shots"]): r["n_known"] for r in pairs.per_format}
    assert max(v for (_, n), v in tried.items() if n < 3) < RESCUE_KNOWN  # the defaults knew too few
    assert {t for t, n in tried if n == 3} == set(rel.prompt_templates)  # so each template tried 3 shots too
    for fmt in pairs.formats:  # each template kept its better shot count
        assert tried[(fmt.template, fmt.shots)] == max(v for (t, _), v in tried.items() if t == fmt.template)
    rows = survey_prompts(tiny_llama, rel, shots=(0, 1, 3), max_rank=rank)
    assert [PromptFormat(r["template"], r["shots"]) for r in rows if r["default"]] == list(pairs.formats)
    big = make_pairs(tiny_llama, rel, max_rank=ALL)  # every fact known: no rescue
    assert {r["shots"] for r in big.per_format} == {0, 1}


# ------------------------------------------------------------ remade from metadata


@pytest.mark.parametrize("request_", [{"templates": "all", "shots": 2}, {"templates": "best", "shots": None}])
def test_a_scored_graph_remakes_its_pairs_and_evaluates_the_same(tiny_llama, request_, tmp_path):
    settings = ScoreSettings(ig_steps=1, max_pairs=10, max_rank=ALL, **request_)
    graph, pairs = score_relation(tiny_llama, plain_relation(), settings, progress=False)
    assert graph.metadata["prompt"] == json.loads(json.dumps(pairs.prompt_record()))
    again = remake_pairs(tiny_llama, pairs.relation, graph.metadata)
    assert [(p.clean_text, p.corrupt_text) for p in again.heldout] == [
        (p.clean_text, p.corrupt_text) for p in pairs.heldout
    ]
    file = tmp_path / "plain_capitals.json"
    file.write_text(json.dumps(relation_to_json(pairs.relation)), encoding="utf-8")
    with_pairs = heldout_evaluator(tiny_llama, graph, pairs).full.metric
    remade = heldout_evaluator(tiny_llama, graph, relation_file=file).full.metric
    assert np.isfinite(with_pairs) and remade == with_pairs


# ------------------------------------------------------------ small samples


def test_few_pairs_are_warned_about_with_counts_and_remedies(tiny, caplog):
    pairs = make_pairs(tiny, plain_relation(12), templates="first", max_rank=ALL)
    text = sample_warning(pairs)
    assert text is not None
    assert f"only {len(pairs.scoring)} pairs to score and {len(pairs.heldout)} held out" in text
    assert f"below {MIN_SCORING} scored or {MIN_HELDOUT} held out" in text
    assert "--templates all" in text and "--shots 3" in text
    with caplog.at_level(logging.WARNING):
        score_relation(
            tiny,
            plain_relation(12),
            ScoreSettings(ig_steps=1, max_rank=ALL, templates="first"),
            progress=False,
        )
    assert any("pairs to score" in r.getMessage() for r in caplog.records)
    enough = make_pairs(tiny, load_relation("country_capital_city"), max_rank=ALL)
    assert len(enough.scoring) >= MIN_SCORING and sample_warning(enough) is None


# ------------------------------------------------------------ command line


def test_score_says_which_prompts_it_used_and_records_them(capsys, tmp_path, caplog):
    from conftest import run_cli

    out = tmp_path / "s"
    with caplog.at_level(logging.WARNING):
        code, text, err = run_cli(
            capsys,
            "score",
            "country_capital_city",
            "--model",
            "tiny-llama",
            "--max-rank",
            ALL,
            "--max-pairs",
            8,
            "--ig-steps",
            1,
            "--templates",
            "all",
            "--shots",
            2,
            "--quiet",
            "--out",
            out,
        )
    assert code == 0, err
    assert (
        "prompts: 2-shot 'The capital of Kenya is Nairobi. The capital of {} is' "
        "+ 2-shot 'The capital city of {} is' + 2-shot 'The capital of {} is' "
        "(facts known: 95, 95, 95 of 95; 8 pairs)"
    ) in text
    meta = json.loads((out / "graph.json").read_text())
    assert meta["prompt"]["templates"] == "all" and meta["prompt"]["shots"] == 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "only 5 pairs to score and 3 held out" in m and "a larger --max-pairs (now 8)" in m for m in warned
    )


def test_relations_compares_templates_and_shots_for_a_file(capsys, tmp_path):
    from conftest import run_cli

    file = tmp_path / "mine.json"
    file.write_text(json.dumps(relation_to_json(plain_relation(30))), encoding="utf-8")
    code, text, err = run_cli(
        capsys, "relations", file, "--model", "tiny-llama", "--max-rank", ALL, "--quiet"
    )
    assert code == 0, err
    lines = [line for line in text.splitlines() if PLAIN in line or "has its capital" in line]
    assert len(lines) == 6  # 2 templates x shots 0, 1, 3
    picked = [line for line in lines if "picked by `circuits score`" in line]
    assert len(picked) == 2 and all("1   30 of 30" in line for line in picked)  # each template at 1 shot
    code, _, err = run_cli(
        capsys, "score", file, "--model", "tiny-llama", "--templates", "third", "--out", tmp_path / "x"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "templates 'third' is not valid; give best, first, all, or a template index" in err


# ------------------------------------------------------------ the embedded model


def test_one_shot_from_its_own_facts_makes_the_embedded_model_know_more_of_a_plain_relation(
    smollm2, tmp_path
):
    """A zero-shot file a user might write: the model knows more of it
    once one of its facts is shown first."""
    cities = load_relation("city_in_country").facts[:40]
    file = tmp_path / "city_country_plain.json"
    file.write_text(
        json.dumps(
            {
                "name": "city in country",
                "prompt_templates": ["{} is located in the country of"],
                "samples": [{"subject": f.subject, "object": f.object} for f in cities],
            }
        )
    )
    rel = load_relation(file)
    rows = {r["shots"]: r for r in survey_prompts(smollm2, rel, shots=(0, 1))}
    assert rows[1]["n_known"] > rows[0]["n_known"] + 3, rows
    assert rows[1]["default"]  # and the default is the one-shot prompt
    pairs = make_pairs(smollm2, rel)
    assert pairs.formats[0].shots == 1 and pairs.n_known == rows[1]["n_known"]


def test_an_analysis_says_which_prompt_formats_its_prompts_use(capsys):
    from conftest import run_cli

    code, text, err = run_cli(
        capsys,
        "knockout",
        "country_capital_city",
        "--model",
        "tiny-llama",
        "--max-rank",
        ALL,
        "--max-pairs",
        6,
        "--boot",
        10,
        "--templates",
        "all",
        "--shots",
        2,
        "--quiet",
    )
    assert code == 0, err
    first = text.splitlines()[0]
    assert "6 known-fact prompts" in first
    assert "2-shot 'The capital city of {} is' + 2-shot 'The capital of {} is'" in first
