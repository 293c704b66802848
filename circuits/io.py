"""Files on disk, torch-free: atomic writes and JSON reading with errors that name the file.

Every file the engine writes goes to a temporary name in the same directory
and is renamed into place, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from circuits.vocab import InputError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "record_json",
    "swap_in",
]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> atomic_write_bytes(target, b"hi"); target.read_bytes()
    b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (no NaN or infinity: they are not JSON), atomically."""
    atomic_write_text(path, json.dumps(data, indent=indent, allow_nan=False))


def record_json(data: Any) -> str:
    """An analysis record as compact JSON: no indentation, which is half the size of an indented one.

    Records hold thousands of ``{"value", "low", "high"}`` intervals; ``python -m json.tool`` shows
    them indented.

    >>> record_json({"a": [1, {"value": 0.5}]})
    '{"a":[1,{"value":0.5}]}'
    """
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def read_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """Parse a JSON file; a missing or malformed file is an :class:`InputError` naming it.

    >>> read_json("/no/such/file.json")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: /no/such/file.json: no such JSON file
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


def swap_in(staging: Path, target: Path) -> None:
    """Put the finished folder ``staging`` at ``target`` by renames.

    An existing ``target`` is first renamed aside to ``.<name>.old-<id>`` and
    removed last, so at every moment either the old or the new folder is
    whole (a reader may restore an ``.old-`` folder left by a crash between
    the two renames).
    """
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, target)
