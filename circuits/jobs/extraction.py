"""Circuit jobs on stored results: extract from a scored graph, draw, compare two circuits.

These are the jobs behind ``circuits extract``, ``render`` and ``compare``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.checks import REQUIRED_METADATA, check_metadata, shape_size
from circuits.circuit import Circuit
from circuits.compare import METRICS, compare
from circuits.compare.ceilings import NoiseSettings, family_noise
from circuits.draw import Rendered, circuit_dot, diff_dot, render, role_dot
from circuits.extract import extract
from circuits.jobs.compare_record import CircuitComparison
from circuits.jobs.noise_record import CompareNoise, SimilarityRow
from circuits.records.stored import Estimate
from circuits.store import CIRCUIT_FILE, META, RELATION, Gallery, circuit_name, load_scored, scored_dir
from circuits.store.circuits import read_circuit, write_circuit
from circuits.uncertainty import DEFAULT_BOOT
from circuits.vocab import ExtractMethod, InputError

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = [
    "circuit_diagram",
    "compare_files",
    "diagram_writer",
    "extract_stored",
    "load_circuit",
    "render_circuit_file",
    "scored_beside",
]


def load_circuit(path: str | Path) -> Circuit:
    """A circuit from its JSON file or from a store circuit folder."""
    path = Path(path)
    return read_circuit(path / CIRCUIT_FILE if path.is_dir() else path)


def diagram_writer(
    circuit: Circuit, formats: tuple[str, ...] = ("svg",), *, color_by: str = "sign"
) -> Callable[[Path], str]:
    """A ``draw(folder)`` for :meth:`Gallery.save_circuit`: writes ``circuit.dot`` and the diagrams.

    A position-aware circuit is drawn in role lanes (:func:`~circuits.draw.role_dot`).
    """

    def draw(folder: Path) -> str:
        return render(
            circuit_diagram(circuit, color_by=color_by), folder / "circuit", formats=formats
        ).message

    return draw


def extract_stored(
    directory: str | Path,
    *,
    extract_method: str = ExtractMethod.TOP_N.value,
    size: int | None = None,
    fraction: float | None = None,
    threshold: float | None = None,
    target_faithfulness: float | None = None,
    by: str = "signed",
    pruned: bool = True,
    evaluate: bool = False,
    name: str | None = None,
    out: str | Path | None = None,
    store: str | Path | None = None,
    formats: tuple[str, ...] = ("svg",),
    n_boot: int = DEFAULT_BOOT,
    model: LoadedModel | None = None,
    positions: str | None = None,
) -> tuple[Circuit, Path, str]:
    """Extract a circuit from a scored-graph directory and save it.

    ``positions`` (default: the graph's own) chooses (edge, role) units from a
    graph scored with position roles (``"roles"``) or edges (``"summed"``).

    With ``target_faithfulness`` the smallest top-n circuit reaching it is
    searched for on the graph's scoring pairs (extraction method ``minimal``,
    runs the model), so the held-out pairs stay unseen until the circuit is
    measured on them; ``evaluate`` measures held-out faithfulness. ``model``
    (a :class:`~circuits.models.LoadedModel`) saves loading the graph's model
    again. Either way the circuit's held-out
    faithfulness gets a 95% bootstrap interval over the pairs (``n_boot``
    resamples seeded by the graph's seed; 0: none), kept in
    ``circuit.params["faithfulness_interval"]`` as ``{"value", "low", "high",
    "n_boot", "n_pairs"}`` and reported in the returned message. The circuit
    goes to ``store`` (a gallery, with diagrams) or to ``out`` (default
    ``DIR/NAME.circuit.json``). Returns the circuit, where it went and a
    message (the faithfulness interval, any rendering problem; empty when
    there is neither).

    >>> import tempfile
    >>> from circuits import ScoreSettings, load_model, save_scored, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> model = load_model("tiny-llama")
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> folder = save_scored(tempfile.mkdtemp(), graph, pairs.relation)
    >>> circuit, path, message = extract_stored(folder, size=20, evaluate=True, n_boot=50)
    >>> iv = circuit.params["faithfulness_interval"]
    >>> sorted(iv), iv["value"] == round(circuit.faithfulness, 6), iv["n_pairs"]
    (['high', 'low', 'n_boot', 'n_pairs', 'value'], True, 3)
    >>> message.startswith("held-out faithfulness ") and "[" in message
    True
    >>> load_circuit(path).params["faithfulness_interval"] == iv
    True
    """
    folder = scored_dir(directory)
    graph = load_scored(folder)
    evaluator = search = None
    if target_faithfulness is not None or evaluate:
        from circuits.evaluate.heldout import heldout_evaluator
        from circuits.models import load_model

        meta = check_metadata(graph.metadata, str(folder / META), required=REQUIRED_METADATA)
        if model is None:
            model = load_model(meta["model"], processing=meta.get("processing", "none"))
        evaluator = heldout_evaluator(model, graph, relation_file=folder / RELATION)
        if target_faithfulness is not None:
            search = heldout_evaluator(model, graph, relation_file=folder / RELATION, split="scoring")
    if target_faithfulness is not None:
        extract_method = ExtractMethod.MINIMAL.value
    circuit = extract(
        graph,
        extract_method,
        size=size,
        fraction=fraction,
        value=threshold,
        target=target_faithfulness,
        evaluate=search,
        by=by,
        pruned=pruned,
        positions=positions,
    )
    if search is not None:  # what the search measured was on the scoring pairs; held-out F comes below
        circuit.params = {
            **circuit.params,
            "search_faithfulness": circuit.faithfulness,
            "search_split": "scoring",
        }
        circuit.faithfulness = None
    circuit.name = name or circuit_name(circuit)
    notes = []
    if evaluator is not None:
        from circuits.evaluate import faithfulness_interval

        interval = faithfulness_interval(
            evaluator, circuit.to_unit_mask(), n_boot=n_boot, seed=graph.metadata.get("seed", 0)
        )
        if circuit.faithfulness is None:
            circuit.faithfulness = interval.value
        n_pairs = len(evaluator.batch)
        if n_boot:
            circuit.params = {
                **circuit.params,
                "faithfulness_interval": {**interval.as_dict(), "n_boot": n_boot, "n_pairs": n_pairs},
            }
            notes.append(
                f"held-out faithfulness {interval.format(3)} "
                f"(95% bootstrap over {n_pairs} pairs, {n_boot} resamples)"
            )
    if store is not None:
        where, message = Gallery(store).save_circuit(circuit, draw=diagram_writer(circuit, formats))
        return circuit, where, "\n".join([*notes, message] if message else notes)
    return circuit, write_circuit(circuit, out or folder / f"{circuit.name}.circuit.json"), "\n".join(notes)


def render_circuit_file(
    path: str | Path,
    *,
    diff: str | Path | None = None,
    color_by: str = "sign",
    out: str | Path | None = None,
    formats: tuple[str, ...] = ("svg",),
) -> Rendered:
    """Draw a stored circuit (or, with ``diff``, two of them) next to it or at ``out``."""
    path = Path(path)
    circuit = load_circuit(path)
    base = path / "circuit" if path.is_dir() else path.with_suffix("")
    if diff is not None:
        graph = diff_dot(circuit, load_circuit(diff))
        base = base.with_name(f"{base.name}-vs-{Path(diff).with_suffix('').name}")
    else:
        graph = circuit_diagram(circuit, color_by=color_by)
    return render(graph, out or base, formats=formats)


def circuit_diagram(circuit: Circuit, *, color_by: str = "sign") -> Any:
    """The circuit's DOT graph: role lanes for a position-aware circuit (colours by sign), else layers."""
    return role_dot(circuit) if circuit.roles is not None else circuit_dot(circuit, color_by=color_by)


def compare_files(
    a: str | Path, b: str | Path, *, diff: str | Path | None = None, noise: NoiseSettings | None = None
) -> CircuitComparison:
    """Similarities of two stored circuits; with ``diff``, also a diff diagram written there.

    With ``noise``, and when both circuits sit next to the scored graph they
    came from (``DIR/NAME.circuit.json`` beside ``DIR/graph.json``, or a
    gallery circuit folder beside its relation's ``scored/``) and those graphs
    keep per-pair scores, every similarity gets its bootstrap interval, both
    circuits' split-half ceilings, the relative value and the permutation null
    (:func:`~circuits.compare.ceilings.family_noise`; the circuits are redrawn
    as pruned top-n circuits of their size). ``result.noise`` holds them, or
    says why there are none (:class:`~circuits.jobs.noise_record.CompareNoise`).
    """
    first, second = load_circuit(a), load_circuit(b)
    models = [c.provenance.get("model") for c in (first, second)]
    if models[0] != models[1] or first.shape != second.shape:
        a_of, b_of = (
            f"{m or 'an unnamed model'} ({shape_size(c.shape)})"
            for m, c in zip(models, (first, second), strict=True)
        )
        raise InputError(
            f"{a} is a circuit of {a_of} and {b} one of {b_of}: circuits of different models "
            "share no edges; compare circuits of one model"
        )
    result = CircuitComparison.from_dict(compare(first, second))
    if noise is not None:
        result.noise = _compare_noise((a, b), (first, second), noise)
    if diff is not None:
        result.diff = [str(p) for p in render(diff_dot(first, second), diff, formats=("svg",)).written]
    return result


def scored_beside(path: str | Path) -> Path | None:
    """The scored-graph directory a circuit file or gallery circuit folder was extracted from, if at hand."""
    path = Path(path)
    candidates = (path.parent / "scored",) if path.is_dir() else (path.parent, path.parent.parent / "scored")
    for folder in candidates:
        if (folder / META).is_file():
            return folder
    return None


def _compare_noise(
    paths: tuple[str | Path, str | Path], circuits: tuple[Circuit, Circuit], settings: NoiseSettings
) -> CompareNoise:
    folders = [scored_beside(p) for p in paths]
    if None in folders:
        missing = [str(p) for p, f in zip(paths, folders, strict=True) if f is None]
        return CompareNoise(
            skipped=f"no scored graph beside {', '.join(missing)}; intervals need the graph it came from"
        )
    graphs = [load_scored(f) for f in folders]  # type: ignore[arg-type]
    if any(g.pair_scores is None for g in graphs):
        return CompareNoise(
            skipped="a scored graph keeps no per-pair scores (scored before version 0.3); score it again"
        )
    if any(c.positions != g.positions for c, g in zip(circuits, graphs, strict=True)):
        return CompareNoise(
            skipped="a circuit and the scored graph beside it differ in positions (summed vs roles); "
            "intervals redraw circuits from that graph, so they need the graph the circuit came from"
        )
    if circuits[0].params.get("by", "signed") != circuits[1].params.get("by", "signed"):
        return CompareNoise(skipped="the circuits rank edges differently (signed vs abs)")
    names = ["A", "B"]
    family = family_noise(
        dict(zip(names, graphs, strict=True)),
        dict(zip(names, circuits, strict=True)),
        [*METRICS, "spearman"],
        settings=settings,
    )
    sims = family.pairs[("A", "B")]
    return CompareNoise(
        settings=family.settings,
        ceilings={n: {m: Estimate.of(iv) for m, iv in c.items()} for n, c in family.ceilings.items()},
        similarities={m: SimilarityRow.from_dict(sim.as_dict()) for m, sim in sims.items()},
    )
