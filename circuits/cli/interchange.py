"""``circuits import`` and ``export``: graph files of the EAP-IG library and the MIB circuit track.

Parse, call :func:`circuits.store.mib.import_mib` / :func:`~circuits.store.mib.export_mib`,
print. The JSON form needs no torch; the ``.pt`` form imports it when run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from circuits.cli import options
from circuits.store.mib_format import FORMATS

__all__ = ["register"]


def cmd_import(args: argparse.Namespace) -> int:
    from circuits.store.mib import import_mib

    report = import_mib(args.file, out=args.out, kv_heads=args.kv_heads, fmt=args.format)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    origin = "written by this engine" if report["ours"] else "foreign: k/v scores summed per key/value head"
    print(f"wrote {report['scored']} (scored graph, {report['n_edges']} edges; {report['format']}, {origin})")
    if report["circuit"]:
        print(f"wrote {report['circuit']} (circuit of the {report['circuit_edges']} edges marked in_graph)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from circuits.store.mib import export_mib

    rows = export_mib(
        args.source,
        out=args.out,
        fmt=args.format,
        sizes=args.sizes,
        by=args.by,
        scored=args.scored,
        d_model=args.d_model,
        stem=args.stem,
        provenance=not args.no_provenance,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"wrote {row['path']} ({row['format']}: {row['n_edges']} edges, {row['in_graph']} in_graph)")
    return 0


def register(add: Any) -> None:
    """Add ``import`` and ``export`` through ``add(name, help, *parents)``."""
    p = add(
        "import",
        "read an EAP-IG / MIB circuit-track graph file (.json or .pt) into a scored-graph "
        "directory, with the circuit of its in_graph edges",
        options.json_output(),
    )
    p.add_argument("file", type=Path, help="a file written by EAP-IG's Graph.to_json or Graph.to_pt")
    p.add_argument("--out", type=options.out_dir, required=True, help="the scored-graph directory to write")
    p.add_argument(
        "--kv-heads",
        type=options.at_least(1),
        help="key/value heads per layer when the file's cfg has no n_key_value_heads "
        "(default: n_heads, multi-head attention)",
    )
    p.add_argument("--format", choices=FORMATS, help="the file's format (default: by its suffix)")
    p.set_defaults(func=cmd_import)

    p = add(
        "export",
        "write a scored graph or a circuit as an EAP-IG / MIB circuit-track graph file",
        options.json_output(),
    )
    p.add_argument(
        "source",
        type=Path,
        help="a scored-graph directory, store relation folder, circuit JSON file or store circuit folder",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="EAP-IG's JSON or torch (.pt) form")
    p.add_argument("--out", type=Path, required=True, help="the file to write (with --sizes: the folder)")
    p.add_argument(
        "--sizes",
        choices=["mib"],
        help="mib: ten files <stem>_<percent>.<ext>, the top 0.1%%, 0.2%%, ..., 100%% of the "
        "ungrouped graph's edges in_graph (from a scored graph)",
    )
    p.add_argument(
        "--by",
        choices=["abs", "signed"],
        help="with --sizes: rank by |score| (default, as MIB) or most negative first",
    )
    p.add_argument(
        "--scored",
        type=Path,
        help="with a circuit: a scored graph whose scores the edges outside it carry (default 0)",
    )
    p.add_argument(
        "--d-model",
        type=options.at_least(0),
        help="cfg's d_model (default: known for this engine's models, else 0)",
    )
    p.add_argument("--stem", help="with --sizes: the file name stem (default: the relation)")
    p.add_argument(
        "--no-provenance",
        action="store_true",
        help="leave out this engine's metadata block (then a file reads back as a foreign one)",
    )
    p.set_defaults(func=cmd_export)
