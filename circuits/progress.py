"""Progress bars (tqdm on stderr), one helper for every long stage."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, *, enabled: bool = True) -> Any:
    """A tqdm bar on stderr that disappears when done (silent when ``enabled`` is false)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)
