"""The main job's channels stage: weight channels checked against the stored patching graphs, drawn."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from circuits.channels import analyze, find_channels, validate_graph
from circuits.draw import channels_dot, render
from circuits.io import record_json
from circuits.jobs.channels import ChannelsReport, Overlay
from circuits.store import Gallery

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["channels_stage"]

SHARE, BY = 0.9, "component"


def channels_stage(
    model: LoadedModel,
    gallery: Gallery,
    relations: list[str],
    *,
    overlay: tuple[str, str],
    top: int = 10,
    seed: int = 0,
) -> tuple[Path, ChannelsReport]:
    """Predict the ``top`` channels from the weights and validate them on each relation's stored graph.

    Unlike ``circuits channels --validate``, nothing is re-scored: the
    relations' scored graphs in ``gallery`` are the patching graphs. Writes
    ``<model>/channels/channels.json`` (the channels, the validation rows and
    which circuit the overlay draws) and ``overlay.svg`` (the channels over
    the circuit ``overlay = (relation, circuit name)``; needs Graphviz) and
    returns that folder and the report ``channels.json`` holds
    (:meth:`ChannelsReport.to_dict`).
    """
    analysis = analyze(model, seed=seed)
    report = ChannelsReport.of(
        analysis, find_channels(analysis, top=top, share=SHARE, by=BY), share=SHARE, by=BY
    )
    report.validation = [validate_graph(analysis, gallery.load_scored(model.name, rel)) for rel in relations]
    relation, name = overlay
    circuit = gallery.load_circuit(model.name, relation, name)
    report.overlay = Overlay(relation, name)
    title = (
        f"{model.name}: the {top} strongest weight channels over the {relation} circuit "
        f"({circuit.n_edges} edges)"
    )
    dot = channels_dot(report.channels, circuit.shape, circuit=circuit, title=title)

    def draw(folder: Path) -> None:
        rendered = render(dot, folder / "overlay", formats=("svg",))
        report.overlay = Overlay(relation, name, rendered.message)
        (folder / "channels.json").write_text(record_json(report.to_dict()), encoding="utf-8")

    return gallery.save_files(
        model.name, "channels", {}, {"relations": relations, "top": top}, after=draw
    ), report
