"""Files on disk, torch-free: atomic writes and JSON reading with errors that name the file.

Every file the engine writes goes to a temporary name in the same directory
and is renamed into place, so a crash never leaves a half-written file. New
files get the permissions the umask allows (``0o644`` under ``022``); an
overwritten file keeps its own.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
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
    "writable_dir",
    "writable_file",
]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    A new file gets the permissions ``0o666`` less the umask (``0o644`` under the
    usual ``022``), as ``open(path, "w")`` would give it; a file that is
    overwritten keeps its permission bits (``rwx`` for user, group and others;
    set-id and sticky bits are not carried over). On failure the old file is left
    as it was and the temporary file is removed.

    >>> import os, stat, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> atomic_write_bytes(target, b"hi"); target.read_bytes()
    b'hi'
    >>> target.chmod(0o640); atomic_write_bytes(target, b"again"); oct(stat.S_IMODE(target.stat().st_mode))
    '0o640'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep: int | None = stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except FileNotFoundError:
        keep = None
    # The temporary file is created with mode 0o666 (or, over an existing file, that file's bits), and
    # the kernel takes the umask off as it creates it (or applies the folder's default ACL, which then
    # rules instead of the umask): the umask is never read. Reading it means setting it
    # (os.umask(0); os.umask(old)), which changes it for every thread of the process for that moment, and
    # reading it once at import misses a later change; /proc/self/status has it without changing it,
    # but only on Linux. tempfile.mkstemp would create the file 0o600 whatever the umask.
    fd, tmp = _create_temporary(path, 0o666 if keep is None else keep)
    try:
        if keep is not None:  # the umask may have narrowed the old bits; widening to them leaks nothing
            _chmod(fd, tmp, keep)
        with os.fdopen(fd, "wb") as handle:
            fd = -1  # the handle owns it now
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise


_TEMPORARY_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _create_temporary(path: Path, mode: int) -> tuple[int, Path]:
    """A new file ``.<name>.<random>`` next to ``path``, open for writing, created ``mode`` less the umask."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}"
        try:
            return os.open(tmp, _TEMPORARY_FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


def _chmod(fd: int, tmp: Path, mode: int) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows before Python 3.13
        os.chmod(tmp, mode)


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
        return json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is allowed
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise InputError(f"{path}: malformed JSON: nested too deeply to be a {what}") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise InputError(f"{path}: malformed JSON: {error}") from None


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


def writable_dir(path: str | Path) -> Path:
    """``path`` when it is, or can be made, a directory this process can write in;
    else an :class:`InputError`.

    Checked before the work starts, so a bad output path is found in a
    second, not after minutes of scoring: ``path`` must not be a file, the
    nearest folder above it that exists must be a folder, and a probe file
    must be creatable there (which is what a read-only mount refuses, even to
    root). Nothing is left behind.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> writable_dir(root / "new" / "dir") == root / "new" / "dir"
    True
    >>> (root / "f").write_text("x") and None
    >>> writable_dir(root / "f" / "sub")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: .../f/sub: .../f is a file, so no directory can be made under it
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file, not a directory; give a directory (new or existing)")
    _probe(path, path)
    return path


def writable_file(path: str | Path) -> Path:
    """``path`` when a file can be written there: not a directory,
    in a folder that can be made and written."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name")
    _probe(path.parent, path)
    return path


def _probe(folder: Path, asked: Path) -> None:
    """Create and remove a probe file in the nearest existing folder at or above ``folder``."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{asked}: {existing} is a file, so no directory can be made under it")
    try:
        fd, probe = tempfile.mkstemp(prefix=".circuits-probe-", dir=existing)
    except OSError as error:
        raise InputError(
            f"{asked}: cannot write in {existing} ({error.strerror}); choose a writable place"
        ) from None
    os.close(fd)
    os.unlink(probe)
