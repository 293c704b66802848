"""Results on disk (torch-free): every stored type is saved and loaded here.

Scored graphs (:mod:`~circuits.store.scored`), circuits as node-link JSON
(:mod:`~circuits.store.circuits`), the ``graphs/`` gallery and its manifest
(:mod:`~circuits.store.gallery`), and the graph files of EAP-IG and MIB
(:mod:`~circuits.store.mib`).

The ``.pt`` functions (:mod:`circuits.store.mib_pt`) import torch when called.
"""

from circuits.store.circuits import (
    CIRCUIT_FORMAT,
    circuit_from_dict,
    circuit_from_json,
    circuit_from_networkx,
    circuit_to_dict,
    circuit_to_json,
    read_circuit,
    write_circuit,
)
from circuits.store.gallery import CIRCUIT_FILE, EVALUATION, MANIFEST, Gallery, circuit_name, safe_name
from circuits.store.mib import export_mib, import_mib
from circuits.store.mib_format import MIB_SIZES
from circuits.store.mib_graph import MibGraph, MibImport
from circuits.store.mib_json import from_mib_json, read_mib_json, to_mib_json, write_mib_json
from circuits.store.mib_pt import from_mib_pt, read_mib_pt, to_mib_pt, write_mib_pt
from circuits.store.scored import META, RELATION, SCORES, load_scored, save_scored, scored_dir

__all__ = [
    "CIRCUIT_FILE",
    "CIRCUIT_FORMAT",
    "EVALUATION",
    "MANIFEST",
    "META",
    "MIB_SIZES",
    "RELATION",
    "SCORES",
    "Gallery",
    "MibGraph",
    "MibImport",
    "circuit_from_dict",
    "circuit_from_json",
    "circuit_from_networkx",
    "circuit_name",
    "circuit_to_dict",
    "circuit_to_json",
    "export_mib",
    "from_mib_json",
    "from_mib_pt",
    "import_mib",
    "load_scored",
    "read_circuit",
    "read_mib_json",
    "read_mib_pt",
    "safe_name",
    "save_scored",
    "scored_dir",
    "to_mib_json",
    "to_mib_pt",
    "write_circuit",
    "write_mib_json",
    "write_mib_pt",
]
