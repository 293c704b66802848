"""The intervention commands: `circuits intervene` on relations and LRE files, the causal reuse test."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli

from circuits.jobs.intervene_record import InterventionRecord
from circuits.mechanisms.interventions import Edit, intervene
from circuits.vocab import Ablation, InputError

ALL = 10**9  # every fact passes the known-fact filter: tiny random models know nothing
RELATION = "country_capital_city"


# ------------------------------------------------------------------ the commands


TINY = ["--model", "tiny-llama", "--max-rank", "1000000000", "--max-pairs", "8", "--boot", "50", "--quiet"]


def strict(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_intervene_command_on_a_bundled_relation_and_an_unseen_lre_file(capsys, tmp_path, river_lre):
    code, out, err = run_cli(
        capsys,
        "intervene",
        RELATION,
        *TINY,
        "--ablate",
        "a1.h0:zero",
        "--scale",
        "m2=0.5",
        "--ablate",
        "a0.h1->a2.h0<v>:counterfactual",
        "--subspace",
        "a2.h1:3",
        "--json",
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0, err
    record = strict(out)
    assert record == strict((tmp_path / "a" / "intervene.json").read_text())
    assert (
        set(record["before"])
        == set(record["after"])
        == set(record["change"])
        == {"accuracy", "answer_prob", "logit_diff"}
    )
    assert all(set(v) == {"value", "low", "high"} for v in record["after"].values())
    assert record["edits"] == [
        "scale m2=0.5",
        "ablate a1.h0:zero",
        "ablate a0.h1->a2.h0<v>:counterfactual",
        "subspace a2.h1:3=0",
    ]
    assert record["n_prompts"] == 3 and record["split"] == "heldout" and record["n_boot"] == 50
    assert ET.parse(tmp_path / "a" / "intervene.svg").getroot().tag.endswith("svg")
    typed = InterventionRecord.from_dict(record)  # intervene.json reads back into its type, to the same JSON
    assert typed.to_dict() == record and InterventionRecord.from_dict(typed.to_dict()) == typed
    assert typed.prompts is not None and typed.prompts.n_heldout == typed.n_prompts == 3

    lre = river_lre
    code, out, err = run_cli(capsys, "intervene", str(lre), *TINY, "--split", "all")
    assert code == 0, err
    assert "tiny-llama / river_country:" in out and "no edits (after = before)" in out
    assert "0.000 [0.000, 0.000]" in out.splitlines()[-1]  # the change of the logit difference
    code, out, err = run_cli(capsys, "intervene", str(lre), *TINY, "--ablate", "m1", "--json")
    assert code == 0, err
    record = strict(out)
    assert record["relation"] == "river_country" and record["edits"] == ["ablate m1:mean"]
    assert set(record["before"]) == set(record["after"])

    code, _, err = run_cli(capsys, "intervene", RELATION, *TINY, "--scale", "a1.h9=0")
    assert code == 2 and "closest: a1.h0, a1.h1" in err and len(err.strip().splitlines()) == 1


def test_run_intervene_returns_its_typed_record(tiny_llama, tmp_path):
    from circuits.jobs.interventions import run_intervene
    from circuits.jobs.mechanisms import PromptChoice

    result, record, files = run_intervene(
        tiny_llama,
        RELATION,
        PromptChoice(max_pairs=8, max_rank=ALL),
        ablate=["a1.h0:zero"],
        n_boot=20,
        out=tmp_path,
        progress=False,
    )
    assert files == [tmp_path / "intervene.json", tmp_path / "intervene.svg"]
    stored = strict((tmp_path / "intervene.json").read_text())
    assert record.to_dict() == stored and InterventionRecord.from_dict(stored) == record
    assert record.edits == ["ablate a1.h0:zero"] and record.split == "heldout" and record.n_boot == 20
    assert record.prompts is not None and record.prompts.choice["max_pairs"] == 8
    assert record.prompts.n_scoring + record.prompts.n_heldout == record.prompts.n_pairs
    assert set(record.before) == set(record.after) == set(record.change) == set(result.before)
    assert record.before["accuracy"].value == pytest.approx(result.before["accuracy"].value, abs=1e-6)
    assert len(record.subjects) == record.n_prompts == len(record.after_values["logit_diff"])
    heading = record.provenance().heading()
    assert heading.startswith(f"tiny-llama / {RELATION}: 3 known-fact prompts (")
    with pytest.deprecated_call(match=r"'InterventionRecord\[key\]'"):
        assert record["edits"] == record.edits  # the dict reading of 0.4, one more version
    with pytest.raises(InputError, match="not an 'intervene' record"):
        InterventionRecord.from_dict({**stored, "analysis": "knockout"}, source="x.json")


# ------------------------------------------------------------------ the causal reuse test


PICKS = ["country_capital_city", "country_language", "country_continent"]


@pytest.fixture(scope="module")
def gallery(tiny_llama, tmp_path_factory):
    from circuits.attribution.settings import ScoreSettings
    from circuits.jobs.reuse import run_reuse

    root = tmp_path_factory.mktemp("gallery")
    settings = ScoreSettings(max_pairs=8, max_rank=ALL, ig_steps=2)
    run_reuse(
        PICKS,
        model=tiny_llama,
        settings=settings,
        size=20,
        store=root,
        cross=False,
        formats=("dot",),
        progress=False,
    )
    return root


def test_reuse_test_ablates_the_core_the_specific_and_random_heads(tiny_llama, gallery, tmp_path):
    from circuits.jobs.interventions import _circuit_pairs, circuit_heads, run_reuse_test
    from circuits.store import Gallery

    result, files = run_reuse_test(
        tiny_llama, PICKS, store=gallery, fraction=0.5, out=tmp_path, save=True, n_boot=50, progress=False
    )
    record = result.to_dict()  # the stored layout (the typed record's fields: tests/test_renamed.py)
    assert (result.k, [r.relation for r in result.relations]) == (record["k"], PICKS)
    stored = Gallery(gallery).circuits("tiny-llama")
    heads = {r: circuit_heads(stored[r]) for r in PICKS}
    counts = Counter(h for hs in heads.values() for h in hs)
    assert record["k"] == math.ceil(0.5 * 3) == 2
    assert record["core"] == sorted((h for h, n in counts.items() if n >= 2), key=lambda n: (int(n[1]), n))
    assert [r["relation"] for r in record["relations"]] == PICKS
    for row in record["relations"]:
        own = set(heads[row["relation"]])
        pairs = _circuit_pairs(tiny_llama, stored[row["relation"]], Gallery(gallery), None)
        assert row["n_prompts"] == len(pairs.heldout) >= 3 and row["n_core"] == len(record["core"])
        assert set(row["specific_heads"]) <= own - set(record["core"])
        assert row["n_specific"] == min(len(record["core"]), len(own - set(record["core"])))
        assert not set(row["random_heads"]) & (own | set(record["core"]))
        assert set(row["core_matched_heads"]) <= set(record["core"])
        assert len(row["core_matched_heads"]) == row["n_specific"]
        assert set(row["accuracy"]) == {"before", "core", "core_matched", "specific", "random"}
        assert {"core_vs_specific", "matched_vs_specific"} <= set(row["drop_accuracy"])
        drop = row["drop_logit_diff"]["core"]["value"]
        ld = row["logit_diff"]
        assert drop == pytest.approx(ld["before"]["value"] - ld["core"]["value"], abs=1e-5)
        # the core condition is the same as intervening by hand on the circuit's held-out pairs
        edits = [Edit("ablate", h, ablation=Ablation.MEAN) for h in record["core"]]
        by_hand = intervene(tiny_llama, pairs, edits, n_boot=50, progress=False)
        assert by_hand.after["logit_diff"].value == pytest.approx(ld["core"]["value"], abs=1e-5)
    assert files == [
        tmp_path / "reuse_test.json",
        tmp_path / "reuse_test.svg",
        gallery / "tiny-llama" / "reuse_test" / "reuse_test.json",
        gallery / "tiny-llama" / "reuse_test" / "reuse_test.svg",
    ]
    assert strict((tmp_path / "reuse_test.json").read_text()) == json.loads(json.dumps(record))
    assert ET.parse(tmp_path / "reuse_test.svg").getroot().tag.endswith("svg")


def test_reuse_test_command_and_its_errors(capsys, gallery, tmp_path):
    common = ["--model", "tiny-llama", "--gallery", str(gallery), "--boot", "20", "--quiet"]
    code, out, err = run_cli(
        capsys, "reuse-test", *PICKS[:2], *common, "--ablation", "zero", "--fraction", "1"
    )
    assert code == 0, err
    assert "zero ablation" in out and "pooled" in out and "country_language" in out
    code, out, err = run_cli(
        capsys,
        "reuse-test",
        *PICKS,
        *common,
        "--json",
        "--circuit",
        "top-n-signed-20",
        "--ablation",
        "counterfactual",
    )
    assert code == 0, err
    record = strict(out)
    assert record["circuits"] == dict.fromkeys(PICKS, "top-n-signed-20")
    assert record["ablation"] == "counterfactual"
    assert record["pooled"]["n_prompts"] == sum(r["n_prompts"] for r in record["relations"]) >= 9

    code, _, err = run_cli(capsys, "reuse-test", PICKS[0], "country_currency", *common)
    missing = Path(gallery) / "tiny-llama" / "country_currency" / "<circuit>" / "circuit.json"
    assert code == 2 and str(missing) in err and "circuits reuse country_capital_city country_currency" in err
    code, _, err = run_cli(capsys, "reuse-test", *PICKS[:2], *common, "--max-pairs", "4")
    assert code == 2 and "held-out split" in err
