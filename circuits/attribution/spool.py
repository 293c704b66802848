"""Every pair's scores on disk, not in memory: scoring streams mini-batches and keeps only their running sum.

A scored graph keeps the mean over pairs of every edge's score, and every
pair's own score for its strongest edges only (for intervals); which edges
those are is known only once every pair is scored. The spool writes each
mini-batch's per-pair scores to an anonymous temporary file (removed when
closed, or when the process ends) and adds them, pair by pair, to a float64
sum; at the end it reads back the chosen columns a block of pairs at a time.
Memory stays that of one mini-batch and one sum, however many pairs.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence

import numpy as np

__all__ = ["PairSpool"]


class PairSpool:
    """Per-pair float32 scores of one shape, streamed to a temporary file.

    >>> spool = PairSpool((2, 3))
    >>> rows = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    >>> spool.add(rows[:3]); spool.add(rows[3:])
    >>> bool(np.array_equal(spool.mean(), rows.astype(np.float64).mean(0)))
    True
    >>> spool.columns([0, 5]).tolist()
    [[0.0, 5.0], [6.0, 11.0], [12.0, 17.0], [18.0, 23.0]]
    >>> spool.override([5], np.array([[1], [1], [1], [1]], dtype=np.float32))
    >>> float(spool.mean()[1, 2]), spool.columns([5])[:, 0].tolist()
    (1.0, [1.0, 1.0, 1.0, 1.0])
    >>> spool.close()
    """

    def __init__(self, unit_shape: Sequence[int], *, block_rows: int = 64) -> None:
        self.unit_shape = tuple(int(n) for n in unit_shape)
        self.width = math.prod(self.unit_shape)
        self.n = 0
        self.block_rows = block_rows
        self._sum = np.zeros(self.width, dtype=np.float64)
        self._file = tempfile.TemporaryFile(prefix="circuits-pair-scores-")  # noqa: SIM115 (closed by close())
        self._overrides: dict[int, np.ndarray] = {}

    def add(self, rows: np.ndarray) -> None:
        """Append ``rows`` ([k, *unit_shape]) and add them to the sum, one pair after another."""
        flat = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, self.width)
        self._file.write(flat.tobytes())
        for row in flat:  # the order numpy's mean over axis 0 adds them in, so the mean is the same
            self._sum += row
        self.n += len(flat)

    def override(self, columns: Sequence[int], values: np.ndarray) -> None:
        """Replace every pair's score in the flat ``columns`` by ``values`` ([n, len(columns)])."""
        for j, col in enumerate(columns):
            self._overrides[int(col)] = np.asarray(values[:, j], dtype=np.float32)

    def mean(self) -> np.ndarray:
        """The mean over pairs (float64, ``unit_shape``)."""
        total = self._sum.copy()
        for col, values in self._overrides.items():
            total[col] = values.astype(np.float64)[:, None].sum(0)[0]  # pair after pair, as in add
        return (total / max(1, self.n)).reshape(self.unit_shape)

    def columns(self, columns: Sequence[int]) -> np.ndarray:
        """Every pair's scores in the flat ``columns``: [n, len(columns)] float32."""
        idx = np.asarray(columns, dtype=np.int64)
        out = np.empty((self.n, len(idx)), dtype=np.float32)
        self._file.seek(0)
        for start in range(0, self.n, self.block_rows):
            count = min(self.block_rows, self.n - start)
            block = np.frombuffer(self._file.read(count * self.width * 4), dtype=np.float32)
            out[start : start + count] = block.reshape(count, self.width)[:, idx]
        self._file.seek(0, 2)
        for j, col in enumerate(idx.tolist()):
            if col in self._overrides:
                out[:, j] = self._overrides[col]
        return out

    def close(self) -> None:
        self._file.close()
