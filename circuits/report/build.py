"""Build the report: read the results, render every page, write them whole and swap the folder into place."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

from circuits.compare.models import COMPARISON, COMPARISON_FOLDER
from circuits.io import atomic_write_text, swap_in
from circuits.report.across import read_object, read_results
from circuits.report.comparison_page import MODELS_PAGE, comparison_page
from circuits.report.html import GENERATOR, Nav, NavItem
from circuits.report.model_pages import channels_page, reuse_page
from circuits.report.pages import CHANNELS, INDEX, REUSE, index_page, plan, relation_page
from circuits.vocab import InputError

__all__ = ["build_report"]


def _check_target(root: Path, out: Path) -> None:
    """Refuse an output folder that would replace the results or a folder that is not a report."""
    if out == root or out in root.parents:
        raise InputError(
            f"{out}: the report folder cannot hold the results folder {root}; choose another --out"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        index = out / INDEX
        made_here = index.is_file() and f'content="{GENERATOR}"' in index.read_text("utf-8", errors="replace")
        if not made_here:
            raise InputError(
                f"{out}: exists and is not a report written by `circuits report`; "
                "choose another --out or remove it"
            )


def build_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write a static HTML report of the results stored under ``root``; return its ``index.html``.

    The report refers to the stored figures by relative links (nothing is
    copied, nothing is fetched), so it opens from ``file://`` as long as it
    keeps its place relative to ``root``. It is built whole in a hidden
    sibling folder and renamed into place.

    Parameters
    ----------
    root : str or Path
        A results folder in the gallery layout (``<model>/<relation>/...``, see
        :mod:`circuits.report.collect`).
    out : str or Path, optional
        The report's folder (default ``root/report``); an existing folder is
        replaced only if it holds a report.

    Returns
    -------
    Path
        The overview page, ``out/index.html``.

    Raises
    ------
    InputError
        ``root`` is not a folder, a JSON file under it is malformed (the
        message names it), or ``out`` would replace something that is not a
        report.

    Examples
    --------
    >>> import tempfile
    >>> index = build_report("graphs", out=Path(tempfile.mkdtemp()) / "report")
    >>> index.name, (index.parent / "smollm2-135m" / "country_capital_city.html").is_file()
    ('index.html', True)
    """
    root = Path(root).resolve()
    out = (root / "report" if out is None else Path(out)).resolve()
    if not root.is_dir():
        raise InputError(f"{root}: no such results folder")
    _check_target(root, out)
    site = plan(out, root, read_results(root, skip=out))
    compared = root / COMPARISON_FOLDER / COMPARISON
    comparison = read_object(compared, "comparison across models") if compared.is_file() else None
    if (
        comparison is not None
    ):  # `circuits compare-models` stored one: a page of its own, linked from every page
        group = ("Across models", (NavItem("Models compared", MODELS_PAGE),))
        site = dataclasses.replace(site, nav=Nav(site.nav.index, (*site.nav.groups, group)))
    pages = {INDEX: index_page(site)}
    if comparison is not None:
        pages[MODELS_PAGE] = comparison_page(comparison, compared.parent, nav=site.nav, out=out)
    for model in site.models:
        for i, rel in enumerate(model.relations):
            pages[site.pages[(model.name, rel.name)]] = relation_page(site, model, i)
        if (model.name, REUSE) in site.pages:
            pages[site.pages[(model.name, REUSE)]] = reuse_page(site, model)
        if (model.name, CHANNELS) in site.pages:
            pages[site.pages[(model.name, CHANNELS)]] = channels_page(site, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*out.parent.glob(f".{out.name}.new-*"), *out.parent.glob(f".{out.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted build
    staging = out.parent / f".{out.name}.new-{uuid.uuid4().hex[:8]}"
    try:
        for path, text in sorted(pages.items()):
            atomic_write_text(staging / path, text)
        swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / INDEX
