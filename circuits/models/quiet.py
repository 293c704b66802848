"""Silence TransformerLens's and transformers' loading chatter (warnings stay visible at ERROR)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["quiet_transformer_lens"]


@contextlib.contextmanager
def quiet_transformer_lens() -> Iterator[None]:
    """Within the block, transformers' progress bars are off and both libraries log errors only."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    loggers = [logging.getLogger(n) for n in ("transformer_lens", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
