"""The dict reading of the jobs' results, kept for one version now that they return typed records.

A job returns a dataclass (:class:`~circuits.jobs.channels.ChannelsReport`,
:class:`~circuits.jobs.reuse_report.ReuseReport`,
:class:`~circuits.jobs.reuse_test_record.ReuseTestRecord`) whose ``to_dict()``
is the JSON it stores, unchanged from when the jobs returned that dict, and
whose ``from_dict()`` reads it back. Until 0.4 the jobs returned the dicts
themselves; :class:`DictAccess` keeps ``result["key"]`` working for one
version, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from circuits.deprecation import renamed

__all__ = ["DictAccess"]


class DictAccess:
    """``record["key"]``, ``record.get``, ``in`` and ``keys()`` through ``to_dict()``: the old dict reading.

    >>> import warnings
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Row(DictAccess):
    ...     a: int
    ...     def to_dict(self):
    ...         return {"a": self.a}
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     Row(3)["a"], Row(3).get("b", 0), "a" in Row(3)
    (3, 0, True)
    """

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _old(self) -> dict[str, Any]:
        name = type(self).__name__
        renamed(
            f"{name}[key]", f"{name}.<attribute> or {name}.to_dict()", what="dict-style access", stacklevel=4
        )
        return self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self._old()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._old().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._old()

    def keys(self) -> Iterator[str]:
        return iter(self._old().keys())
