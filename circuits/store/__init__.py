"""Results on disk (torch-free): scored graphs, the ``graphs/`` gallery and its manifest."""

from circuits.store.gallery import CIRCUIT_FILE, MANIFEST, Gallery, circuit_name, safe_name
from circuits.store.scored import META, RELATION, SCORES, load_scored, save_scored, scored_dir

__all__ = [
    "CIRCUIT_FILE",
    "MANIFEST",
    "META",
    "RELATION",
    "SCORES",
    "Gallery",
    "circuit_name",
    "load_scored",
    "safe_name",
    "save_scored",
    "scored_dir",
]
