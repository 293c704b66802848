"""A custom comparison over every relation stored in graphs/, in ten lines.

Run `circuits reuse RELATION... --model smollm2-135m` first (it fills graphs/);
this script then compares the stored circuits by a measure of its own (the
Jaccard similarity of the MLPs they use), clusters the relations, draws a
heatmap, and lists the heads shared by at least half of the circuits.
"""

from pathlib import Path

from circuits.compare import cluster, jaccard, reuse_matrix, shared_core
from circuits.draw import heatmap_svg
from circuits.store import Gallery

circuits = Gallery("graphs").circuits("smollm2-135m")  # {relation: Circuit}, the newest of each
if len(circuits) < 2:
    raise SystemExit("fewer than two circuits in graphs/smollm2-135m: run `circuits reuse` first")
matrix = reuse_matrix(circuits, lambda a, b: jaccard(set(a.mlps()), set(b.mlps())))
tree = cluster(matrix)
Path("mlp_reuse.svg").write_text(heatmap_svg(matrix, clustering=tree, title="MLP reuse"))
core = shared_core(list(circuits.values()), k=max(1, len(circuits) // 2))
print(matrix.to_csv(), tree.newick, f"heads in at least half the circuits: {core.heads()}", sep="\n")
