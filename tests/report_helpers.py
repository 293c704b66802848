"""What the report's tests share: the committed gallery's paths, a link reader, small results folders."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = [
    "GALLERY",
    "MODEL",
    "SOURCE",
    "SVG",
    "interval",
    "links_of",
    "make_results",
    "pages_of",
    "snapshot",
    "target_of",
    "write_evaluation",
]

GALLERY = Path(__file__).resolve().parents[1] / "graphs"
MODEL = "smollm2-135m"
SOURCE = GALLERY / MODEL / "country_capital_city"
DRAWN = sorted(SOURCE.glob("*/circuit.svg"))[0].parent  # a committed circuit within the diagram limit
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200">'
    '<rect width="320" height="200" fill="#fff"/>'
    '<path d="M20 180 C 80 20, 160 160, 300 30" stroke="#369" stroke-width="3" fill="none"/>'
    '<circle cx="160" cy="100" r="30" fill="#e66"/><text x="20" y="30" font-size="16">a curve</text></svg>'
)


class Links(HTMLParser):
    """Every ``href``, ``src`` and ``data`` attribute of a page (unescaped), with its tag."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "data") and value is not None:
                self.found.append((tag, name, value))


def links_of(page: Path) -> list[tuple[str, str, str]]:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def target_of(page: Path, link: str) -> Path:
    """The file a relative link of ``page`` points at (an absolute link or a URL fails the test)."""
    parts = urlsplit(link)
    assert not parts.scheme and not parts.netloc and not link.startswith("/"), (
        f"{page}: non-relative {link!r}"
    )
    return (page.parent / unquote(parts.path)).resolve()


def pages_of(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def make_results(root: Path, relation: str = "rel_a", circuit: str = "top-n-signed-150") -> Path:
    """A small results folder: one relation's scored metadata and a drawn circuit, copied from the gallery."""
    folder = root / MODEL / relation
    (folder / "scored").mkdir(parents=True)
    for name in ("graph.json", "relation.json"):
        shutil.copy(SOURCE / "scored" / name, folder / "scored" / name)
    shutil.copytree(DRAWN, folder / circuit)
    return folder


def interval(value: float, half: float = 0.05) -> dict[str, float]:
    return {"value": value, "low": round(value - half, 6), "high": round(value + half, 6)}


def write_evaluation(folder: Path, circuit: str, faithfulness: dict[str, float]) -> None:
    """An ``evaluation.json`` like ``Evaluation.as_dict()`` plus the evaluated circuit, and a figure."""
    fractions = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    curve = [round(0.1 * i, 3) for i in range(10)]
    curves = {k: curve for k in ("signed", "absolute", "random", "hit_at_10")}
    data = {
        "clean_metric": 5.0,
        "corrupt_metric": -1.0,
        "fractions": fractions,
        **curves,
        "cpr": 0.8,
        "cmd": 0.2,
        "random_cpr": 0.1,
        "n_pairs": 10,
        "n_edges": 70651,
        "extra": {"split": "heldout"},
        "intervals": {
            **{k: [interval(v) for v in curve] for k in curves},
            "cpr": interval(0.8),
            "cmd": interval(0.2),
            "random_cpr": interval(0.1),
            "clean_metric": interval(5.0),
            "corrupt_metric": interval(-1.0),
            "n_boot": 200,
            "seed": 0,
        },
        "circuit": {"name": circuit, "n_edges": 150, "target": None, "faithfulness": faithfulness},
    }
    (folder / "evaluation").mkdir()
    (folder / "evaluation" / "evaluation.json").write_text(json.dumps(data))
    (folder / "evaluation" / "evaluation.svg").write_text(SVG)
