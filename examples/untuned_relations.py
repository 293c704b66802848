"""Relation files nobody tuned, next to the bundled ones: known facts and pairs per shot count,
and held-out faithfulness.

For every relation: the facts the model knows and the prompt pairs it gets
with 0, 1 and 3 demonstrations drawn from the relation's own facts (each
under the template ``--templates best`` picks), then the graph scored with
the default settings (``circuits score``'s: EAP-IG, the best template, its
default shot count) and the faithfulness of its top 1% and 2% of edges on
the held-out pairs, with 95% bootstrap intervals.

Run: python examples/untuned_relations.py [RELATION ...] [--model M] [--out results.json]
(default: every file in examples/relations/ and four bundled relations)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from circuits import (
    ScoreSettings,
    evaluate_graph,
    heldout_evaluator,
    load_model,
    load_relation,
    score_relation,
)
from circuits.io import atomic_write_json
from circuits.relations.pairs import make_pairs
from circuits.vocab import NotEnoughFactsError

HERE = Path(__file__).parent
BUNDLED = ("country_capital_city", "city_in_country", "country_language", "product_company")
SHOTS = (0, 1, 3)
FRACTIONS = (0.01, 0.02)

parser = argparse.ArgumentParser()
parser.add_argument("relations", nargs="*")
parser.add_argument("--model", default="smollm2-135m")
parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
args = parser.parse_args()
names = args.relations or [*sorted(str(p) for p in (HERE / "relations").glob("*.json")), *BUNDLED]

model = load_model(args.model)
rows = []
for name in names:
    rel = load_relation(name)
    row: dict = {
        "relation": rel.name,
        "source": "bundled" if name in BUNDLED else "file",
        "facts": len(rel.facts),
    }
    for shots in SHOTS:
        try:
            pairs = make_pairs(model, rel, shots=shots)
            row[f"{shots}-shot"] = {
                "known": pairs.n_known,
                "pairs": len(pairs.pairs),
                "template": pairs.formats[0].template,
            }
        except NotEnoughFactsError:
            row[f"{shots}-shot"] = {"known": None, "pairs": 0, "template": None}
    started = time.perf_counter()
    try:
        graph, pairs = score_relation(model, rel, ScoreSettings(), progress=False)
    except NotEnoughFactsError as error:
        row["error"] = str(error)
        rows.append(row)
        continue
    result = evaluate_graph(heldout_evaluator(model, graph, pairs), graph, fractions=FRACTIONS)
    ivs = result.intervals
    row.update(
        {
            "default": " + ".join(f.label() for f in pairs.formats),
            "scoring": len(pairs.scoring),
            "heldout": len(pairs.heldout),
            "F_signed": [iv.as_dict() for iv in ivs.signed],
            "F_abs": [iv.as_dict() for iv in ivs.absolute],
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    rows.append(row)
    print(f"{rel.name}: done in {row['seconds']} s", flush=True)


def cell(iv: dict) -> str:
    return f"{iv['value']:.2f} [{iv['low']:.2f}, {iv['high']:.2f}]"


print(
    f"\n{model.name}: known facts / pairs by shots (best templates), and held-out F of the default settings"
)
print(
    f"{'relation':<22}{'facts':>6}"
    + "".join(f"{f'{s}-shot':>12}" for s in SHOTS)
    + f"{'pairs s+h':>10}  {'F 1% (signed)':<20}{'F 2% (signed)':<20}{'F 2% (|s|)':<20}default prompt"
)
for row in rows:
    counts = "".join(
        f"{str(row[f'{s}-shot']['known']) + '/' + str(row[f'{s}-shot']['pairs']):>12}" for s in SHOTS
    )
    if "error" in row:
        print(f"{row['relation']:<22}{row['facts']:>6}{counts}  {row['error']}")
        continue
    split = f"{row['scoring']}+{row['heldout']}"
    print(
        f"{row['relation']:<22}{row['facts']:>6}{counts}{split:>10}  {cell(row['F_signed'][0]):<20}"
        f"{cell(row['F_signed'][1]):<20}{cell(row['F_abs'][1]):<20}{row['default']}"
    )
if args.out:
    atomic_write_json(args.out, {"model": model.name, "rows": rows}, indent=1)
