"""Benchmark: the main job (``make run``) cold and warm, against its 15-minute budget on two cores
(not a test).

Runs ``circuits run`` with its defaults (or the given relations) twice into a
fresh temporary folder, as a separate process pinned to two cores when the
machine has more: cold (every stage runs; the model cache is warm, as after
the first ``make run``) and warm (every stage is read back). Prints both wall
times, the cold run's share of the 15-minute budget, the slowest stages and
the report's size.

Usage: python tests/benchmarks/bench_main_job.py [RELATION ...] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 15 * 60


def _run(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("relations", nargs="*")
    parser.add_argument(
        "--keep", type=Path, help="run into this folder and keep it (default: a temporary one)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-main-job-"))
    shutil.rmtree(out, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("circuits"))
    cmd = [exe, "run", *args.relations, "--out", str(out), "--quiet", "--json"]
    if (os.cpu_count() or 1) > 2 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0,1", *cmd]
    env_threads = ["--threads", "2"]
    cold = _run([*cmd, *env_threads])
    warm = _run([*cmd, *env_threads])
    summary = json.loads(next(out.glob("*/job.json")).read_text())
    # the warm run's summary says 0 s for every stage; each stage's record keeps the seconds it took
    # when it ran
    records = [json.loads(p.read_text()) for p in out.glob("*/stages/*.json")]
    stages = sorted(
        ((r["stage"], {"seconds": r["seconds"]}) for r in records), key=lambda kv: -kv[1]["seconds"]
    )
    report = out / "report"
    result = {
        "relations": [r["relation"] for r in summary["relations"]],
        "cold_s": round(cold, 1),
        "warm_s": round(warm, 1),
        "budget_s": BUDGET_S,
        "cold_share_of_budget": round(cold / BUDGET_S, 3),
        "slowest_stages": {name: s["seconds"] for name, s in stages[:8]},
        "report_bytes": _size(report) if report.is_dir() else 0,
        "results_bytes": _size(out),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"main job on {', '.join(result['relations'])} (2 cores)")
        print(f"  cold {cold:7.1f} s  ({100 * cold / BUDGET_S:.0f}% of the {BUDGET_S // 60}-minute budget)")
        print(f"  warm {warm:7.1f} s  (every stage read back)")
        print("  slowest stages: " + ", ".join(f"{n} {s:.0f} s" for n, s in result["slowest_stages"].items()))
        print(
            f"  report {result['report_bytes'] / 1e3:.0f} kB, "
            f"all results {result['results_bytes'] / 1e6:.1f} MB"
        )
    if args.keep is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
