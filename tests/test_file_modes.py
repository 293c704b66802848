"""Written files respect the umask: new files get ``0o666`` less the umask, overwritten files keep their bits.

Every write of the engine goes through :func:`circuits.io.atomic_write_bytes` (a temporary file renamed into
place), so these checks cover what it writes; a failed write leaves the old file whole and nothing behind.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from circuits import io as circuits_io
from circuits.io import atomic_write_bytes, atomic_write_json, atomic_write_text

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o077)``); the old one is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder: Path) -> list[str]:
    """Temporary files (hidden ``.<name>.<random>`` siblings) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o000, 0o666)],
    ids=["umask-022", "umask-077", "umask-002", "umask-000"],
)
def test_a_new_file_gets_0666_less_the_umask(umask, tmp_path: Path, mask: int, expected: int) -> None:
    umask(mask)
    atomic_write_bytes(tmp_path / "new" / "a.bin", b"x")
    atomic_write_text(tmp_path / "b.txt", "y")
    atomic_write_json(tmp_path / "c.json", {"z": 1})
    assert [mode(tmp_path / n) for n in ("new/a.bin", "b.txt", "c.json")] == [expected] * 3
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "new") == []


def test_the_umask_is_left_as_it_was(umask, tmp_path: Path) -> None:
    umask(0o027)
    atomic_write_bytes(tmp_path / "a", b"x")
    assert umask(0o027) == 0o027
    assert mode(tmp_path / "a") == 0o640


def test_overwriting_keeps_the_files_permission_bits(umask, tmp_path: Path) -> None:
    target = tmp_path / "shared.json"
    umask(0o022)
    atomic_write_text(target, "old")
    assert mode(target) == 0o644
    umask(0o077)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o644  # not narrowed to the umask
    target.chmod(0o664)
    atomic_write_text(target, "newer")  # not narrowed by the umask either: the file's own bits are kept
    assert mode(target) == 0o664
    target.chmod(0o600)
    umask(0o000)
    atomic_write_text(target, "private")
    assert mode(target) == 0o600  # a private file is not widened to 0o666 by a lax umask
    target.chmod(0o444)
    atomic_write_text(target, "read-only")  # a new file replaces it; the old one needs no write permission
    assert target.read_text() == "read-only" and mode(target) == 0o444
    assert leftovers(tmp_path) == []


def test_set_id_bits_are_not_carried_over(umask, tmp_path: Path) -> None:
    umask(0o022)
    target = tmp_path / "tool"
    atomic_write_bytes(target, b"#!/bin/sh\n")
    target.chmod(0o4755)
    atomic_write_bytes(target, b"#!/bin/sh\necho\n")
    assert mode(target) == 0o755


def test_a_write_through_a_symlink_replaces_the_link_with_the_targets_bits(umask, tmp_path: Path) -> None:
    umask(0o022)
    real = tmp_path / "real"
    atomic_write_bytes(real, b"a")
    real.chmod(0o640)
    (tmp_path / "link").symlink_to(real)
    atomic_write_bytes(tmp_path / "link", b"b")
    assert mode(tmp_path / "link") == 0o640 and not (tmp_path / "link").is_symlink()
    assert real.read_bytes() == b"a"  # the rename replaces the link, as before


class DiskGoneError(Exception):
    pass


def test_a_write_that_fails_midway_leaves_the_old_file_and_nothing_else(
    umask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    umask(0o022)
    target = tmp_path / "graph.json"
    atomic_write_text(target, "old contents")
    target.chmod(0o640)
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]  # handle.write refuses str
    assert target.read_text() == "old contents" and mode(target) == 0o640
    assert leftovers(tmp_path) == []

    def fail(*args: object) -> None:
        raise DiskGoneError("disk gone")

    monkeypatch.setattr(circuits_io.os, "replace", fail)
    with pytest.raises(DiskGoneError):
        atomic_write_text(target, "new contents")
    monkeypatch.setattr(circuits_io.os, "fsync", fail)
    with pytest.raises(DiskGoneError):
        atomic_write_text(tmp_path / "never.json", "x")
    monkeypatch.undo()
    assert target.read_text() == "old contents" and mode(target) == 0o640
    assert not (tmp_path / "never.json").exists()
    assert leftovers(tmp_path) == []


def test_an_interrupt_midway_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(circuits_io.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "a.bin", b"x" * 10_000)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writes_to_one_file_leave_one_whole_version(umask, tmp_path: Path) -> None:
    umask(0o022)
    target = tmp_path / "one.txt"
    versions = [bytes([65 + i]) * 50_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write_bytes, args=(target, v)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in versions and mode(target) == 0o644
    assert leftovers(tmp_path) == []
