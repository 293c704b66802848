"""Results on disk (torch-free): scored graphs, the ``graphs/`` gallery and its manifest, EAP-IG/MIB graph files.

The ``.pt`` functions (:mod:`circuits.store.mib_pt`) import torch when called.
"""

from circuits.store.gallery import CIRCUIT_FILE, EVALUATION, MANIFEST, Gallery, circuit_name, safe_name
from circuits.store.mib import export_mib, import_mib
from circuits.store.mib_format import MIB_SIZES
from circuits.store.mib_graph import MibGraph, MibImport
from circuits.store.mib_json import from_mib_json, read_mib_json, to_mib_json, write_mib_json
from circuits.store.mib_pt import from_mib_pt, read_mib_pt, to_mib_pt, write_mib_pt
from circuits.store.scored import META, RELATION, SCORES, load_scored, save_scored, scored_dir

__all__ = [
    "CIRCUIT_FILE",
    "EVALUATION",
    "MANIFEST",
    "META",
    "MIB_SIZES",
    "RELATION",
    "SCORES",
    "Gallery",
    "MibGraph",
    "MibImport",
    "circuit_name",
    "export_mib",
    "from_mib_json",
    "from_mib_pt",
    "import_mib",
    "load_scored",
    "read_mib_json",
    "read_mib_pt",
    "safe_name",
    "save_scored",
    "scored_dir",
    "to_mib_json",
    "to_mib_pt",
    "write_mib_json",
    "write_mib_pt",
]
