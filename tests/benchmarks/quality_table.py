"""Quality of the attribution methods on the embedded model, one row per relation.

For each relation: known facts, clean and corrupted logit difference on the
held-out pairs, faithfulness F at 1%, 2% and 5% of the edges (chosen by
|score|) for EAP and EAP-IG, CPR and CMD of EAP-IG, and the Spearman rank
correlation between EAP-IG and exact patching on the 200 top edges. The
faithfulness figures and the metrics come with 95% percentile-bootstrap
intervals over the held-out pairs (``--boot`` resamples, seeded; the runs'
per-pair values are resampled, the model is not re-run), the rank
correlation over the scoring pairs (per-pair EAP-IG and exact scores, both
re-averaged on each resample); ``--json`` gives each as ``{"value", "low",
"high"}``.

Usage: python tests/benchmarks/quality_table.py [RELATION ...] [--max-pairs N] [--boot B] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from circuits.attribution import Harness, exact_edges
from circuits.attribution.score import score_pairs
from circuits.attribution.settings import ScoreSettings
from circuits.compare.similarity import spearman
from circuits.evaluate import Evaluator, evaluate_graph
from circuits.models import load_model
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, make_pairs
from circuits.uncertainty import DEFAULT_BOOT, Interval, percentile_interval, resample_counts

DEFAULT = [
    "country_capital_city",
    "capital_city_country",
    "city_in_country",
    "country_continent",
    "country_language",
    "country_nationality",
    "city_in_us_state",
    "noun_plural",
]


def row(model, name: str, max_pairs: int, top: int, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> dict:
    """One relation's figures; faithfulness, CPR, CMD and the metrics as :class:`Interval`."""
    started = time.perf_counter()
    pairs = make_pairs(model, load_relation(name), max_pairs=max_pairs)
    pad = model.pad_id
    harness = Harness(model)
    evaluator = Evaluator(harness, batch_pairs(pairs.heldout, pad=pad))
    out: dict = {
        "relation": name,
        "known": pairs.n_known,
        "facts": pairs.n_facts,
        "scoring": len(pairs.scoring),
        "heldout": len(pairs.heldout),
    }
    graphs = {}
    for method in ("eap", "eap-ig"):
        graph = score_pairs(model, pairs, ScoreSettings(score_method=method), progress=False)
        graphs[method] = graph
        for pct in (1, 2, 5):
            n = round(pct / 100 * graph.n_edges)
            run = evaluator.run_mask(graph.top_mask(n, by="abs"))
            out[f"{method}_F{pct}"] = evaluator.faithfulness_interval(run, n_boot=n_boot, seed=seed)
    curve = evaluate_graph(evaluator, graphs["eap-ig"], n_boot=n_boot, seed=seed)
    ivs = curve.intervals
    assert ivs is not None
    out["clean"], out["corrupt"] = ivs.clean_metric, ivs.corrupt_metric
    out["cpr"], out["cmd"], out["random_cpr"] = ivs.cpr, ivs.cmd, ivs.random_cpr
    ig = graphs["eap-ig"]
    flat = ig.ranked(by="abs")[:top]
    edges = [divmod(int(i), ig.shape.n_receivers) for i in flat]
    # per pair, so the rank correlation is bootstrapped over the scoring pairs (both sides resampled alike)
    exact = exact_edges(harness, batch_pairs(pairs.scoring, pad=pad), edges, per_pair=True)  # [top, n]
    assert ig.pair_scores is not None
    column = {int(e): k for k, e in enumerate(ig.pair_scores.edges)}
    approx = ig.pair_scores.values[:, [column[int(i)] for i in flat]].astype(np.float64)  # [n, top]
    counts = resample_counts(approx.shape[0], n_boot=n_boot, seed=seed)
    boot = [spearman(c @ approx, exact @ c) for c in counts]
    out["spearman_exact"] = percentile_interval(spearman(approx.mean(0), exact.mean(1)), boot)
    out["seconds"] = time.perf_counter() - started
    return out


def plain(r: dict) -> dict:
    """A row for JSON: every Interval as ``{"value", "low", "high"}``."""
    return {k: v.as_dict() if isinstance(v, Interval) else v for k, v in r.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("relations", nargs="*", default=DEFAULT)
    parser.add_argument("--max-pairs", type=int, default=40)
    parser.add_argument("--top", type=int, default=200)
    parser.add_argument("--boot", type=int, default=DEFAULT_BOOT, help="bootstrap resamples (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resamples and random circuits")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("smollm2-135m")
    rows = []
    for name in args.relations:
        rows.append(row(model, name, args.max_pairs, args.top, max(1, args.boot), args.seed))
        print(json.dumps(plain(rows[-1])), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps([plain(r) for r in rows], indent=2))
        return 0
    head = (
        "| relation | known/facts | clean LD | corrupt LD | EAP F1% | F2% | F5% | EAP-IG F1% | F2% | F5% "
        "| CPR | CMD | random CPR | ρ(IG, exact) top-200 |"
    )
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        print(
            f"| {r['relation']} | {r['known']}/{r['facts']} | {r['clean']} | {r['corrupt']} "
            f"| {r['eap_F1']} | {r['eap_F2']} | {r['eap_F5']} | {r['eap-ig_F1']} "
            f"| {r['eap-ig_F2']} | {r['eap-ig_F5']} | {r['cpr'].format(3)} | {r['cmd'].format(3)} "
            f"| {r['random_cpr'].format(3)} | {r['spearman_exact']} |"
        )
    print(f"\n[low, high]: 95% percentile bootstrap over the held-out pairs ({max(1, args.boot)} resamples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
