"""Resumable stages of a long job (torch-free): a stage whose inputs have not changed is read back from disk.

A stage is a named step (``score/country_capital_city``, ``reuse``, ...) with
a JSON-ready dictionary of *inputs* (model, the content of each relation
file, settings) and a function returning a JSON-ready *result*. When the
stage finishes, its result is written, atomically and after every file the
stage itself writes, to ``<folder>/<stage>.json`` together with the SHA-256
key of its inputs and the package version. A later run computes the key
again: when the record exists, its key matches and every file the result
lists under ``"files"`` is still there, the stage is skipped and its stored
result returned. An interrupted stage left no record, so it runs again; its
files were written atomically, so none is half-written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.io import atomic_write_json, read_json
from circuits.vocab import InputError

__all__ = ["StageLog", "StageRun", "stage_key"]


def stage_key(inputs: dict[str, Any]) -> str:
    """SHA-256 of ``inputs`` and the package version as canonical JSON.

    >>> stage_key({"a": 1, "b": [2]}) == stage_key({"b": [2], "a": 1})
    True
    >>> stage_key({"a": 1}) == stage_key({"a": 2})
    False
    """
    from circuits.version import __version__

    text = json.dumps({"inputs": inputs, "package_version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StageRun:
    """One stage's outcome: its result, whether it was read back, and the seconds it took when it ran."""

    name: str
    result: dict[str, Any]
    reused: bool
    seconds: float


class StageLog:
    """The records of a job's stages in one folder.

    >>> import tempfile
    >>> log = StageLog(tempfile.mkdtemp())
    >>> calls = []
    >>> def work():
    ...     calls.append(1)
    ...     return {"answer": 42}
    >>> log.run("demo", {"x": 1}, work).reused, log.run("demo", {"x": 1}, work).result, len(calls)
    (False, {'answer': 42}, 1)
    >>> log.run("demo", {"x": 2}, work).reused, len(calls)
    (False, 2)
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("/", "__"))
        return self.folder / f"{safe}.json"

    def stored(self, name: str, key: str) -> dict[str, Any] | None:
        """The stored result of ``name`` when its key is ``key`` and its files exist, else ``None``."""
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            record = read_json(path, what="stage record")
        except InputError:
            return None  # a damaged record only costs a re-run
        if (
            not isinstance(record, dict)
            or record.get("key") != key
            or not isinstance(record.get("result"), dict)
        ):
            return None
        files = record["result"].get("files", [])
        if not all((self.folder.parent / f).exists() for f in files):
            return None
        return record["result"]

    def run(self, name: str, inputs: dict[str, Any], work: Callable[[], dict[str, Any]]) -> StageRun:
        """``work()``'s result, or the stored one when ``inputs`` are unchanged.

        ``work`` returns a JSON-ready dictionary; paths under ``"files"`` are
        relative to the parent of this log's folder and must exist for the
        record to be reused.
        """
        key = stage_key(inputs)
        result = self.stored(name, key)
        if result is not None:
            return StageRun(name, result, True, 0.0)
        started = time.perf_counter()
        result = work()
        seconds = round(time.perf_counter() - started, 2)
        atomic_write_json(
            self.path(name),
            {"stage": name, "key": key, "inputs": inputs, "seconds": seconds, "result": result},
        )
        return StageRun(name, result, False, seconds)
