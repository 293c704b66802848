"""Named tensors kept between runs: on the model's device, in host memory, or in a temporary file.

An :class:`~circuits.evaluate.Evaluator` keeps each mini-batch's ablated
senders and shared-prefix keys and values for every circuit it runs. Within
its memory budget they stay where the model is (or, on a GPU short of
memory, in pinned host memory); past it they are written once, as raw bytes,
to an anonymous temporary file and read back at each run into one scratch
buffer the evaluator reuses: far cheaper than computing them again, and
memory stays that of one mini-batch.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from torch import Tensor

from circuits.vocab import InputError

__all__ = ["PLACES", "Buffers"]

PLACES = ("device", "host", "disk")


class Buffers:
    """Tensors by name, kept at one of :data:`PLACES`; :meth:`get` gives them back on ``device``.

    >>> kept = Buffers({"a": torch.arange(3.0), "b": torch.ones(2, 2, dtype=torch.bfloat16)}, "disk",
    ...                torch.device("cpu"))
    >>> got = kept.get()
    >>> kept.place, got["a"].tolist(), got["b"].dtype, kept.nbytes
    ('disk', [0.0, 1.0, 2.0], torch.bfloat16, 20)
    """

    def __init__(self, tensors: dict[str, Tensor], place: str, device: torch.device) -> None:
        if place not in PLACES:
            raise InputError(f"unknown buffer place {place!r}; valid: {', '.join(PLACES)}")
        self.place, self.device = place, device
        self.nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
        self._tensors: dict[str, Tensor] = {}
        self._layout: list[tuple[str, tuple[int, ...], torch.dtype, int, int]] = []
        self._file: Any = None
        if place == "disk":
            # closed, and so removed, when these buffers are garbage-collected with their evaluator
            self._file = tempfile.TemporaryFile(prefix="circuits-buffers-")  # noqa: SIM115
            offset = 0
            for name, t in tensors.items():
                raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                self._file.write(memoryview(raw.numpy()))
                self._layout.append((name, tuple(t.shape), t.dtype, offset, raw.numel()))
                offset += raw.numel()
        elif place == "host" and device.type == "cuda":
            self._tensors = {k: t.detach().cpu().pin_memory() for k, t in tensors.items()}
        else:
            self._tensors = dict(tensors)

    def get(self, scratch: Tensor | None = None) -> dict[str, Tensor]:
        """The tensors on the device; spilled ones are read into ``scratch`` (bytes) when it is large enough.

        Tensors read into ``scratch`` are views of it, valid until it is filled again.
        """
        if self._file is None:
            return {k: t.to(self.device, non_blocking=True) for k, t in self._tensors.items()}
        fits = scratch is not None and scratch.numel() >= self.nbytes
        buffer = scratch[: self.nbytes] if fits else torch.empty(self.nbytes, dtype=torch.uint8)  # type: ignore[index]
        self._file.seek(0)
        self._file.readinto(memoryview(buffer.numpy()))
        return {
            name: buffer[offset : offset + n].view(dtype).reshape(shape).to(self.device)
            for name, shape, dtype, offset, n in self._layout
        }
