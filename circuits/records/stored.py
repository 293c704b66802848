"""Pieces every stored record shares (torch-free): an estimate as stored, the old dict reading, errors.

- :class:`Estimate` is a number as the job records store it: a bare value,
  or ``{"value", "low", "high"}`` (a 95% interval; a bound that is not finite
  is ``null``) with the resamples and pairs behind it where they were
  written (``n_boot``, ``n_pairs``). It reads and writes exactly that form,
  so a record holding estimates round-trips to the same JSON.
- :class:`DictAccess` keeps ``record["key"]`` working, for one version and
  with a :class:`DeprecationWarning`, on the records that replaced the
  dictionaries the jobs returned until 0.4.
- :func:`read_stored` turns a missing or mistyped field of a stored record
  into an :class:`~circuits.vocab.InputError` that names the file.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from circuits.deprecation import renamed
from circuits.uncertainty import Interval, format_stored
from circuits.vocab import InputError

__all__ = ["DictAccess", "Estimate", "read_stored", "stored"]

T = TypeVar("T")


def _number(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"a stored number, not {x!r}")
    return float(x)


@dataclass(frozen=True)
class Estimate:
    """A stored value with its 95% interval (``low``, ``high``; ``None``: not stored or not finite).

    ``bare`` marks a value stored as a plain number (no interval was drawn).

    >>> e = Estimate.read({"value": 0.73, "low": 0.61, "high": 0.82, "n_boot": 200, "n_pairs": 10})
    >>> e.shown(), e.n_pairs, e.to_stored() == {"value": 0.73, "low": 0.61, "high": 0.82,
    ...                                        "n_boot": 200, "n_pairs": 10}
    ('0.73 [0.61, 0.82]', 10, True)
    >>> Estimate.read(0.5).to_stored(), Estimate.read(None), Estimate.read({"value": None}).shown()
    (0.5, None, 'n/a')
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    n_boot: int | None = None
    n_pairs: int | None = None
    bare: bool = False

    @classmethod
    def read(cls, data: Any) -> Estimate | None:
        """An estimate from its stored form (a number, an object, or ``None``: none)."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            return cls(_number(data), bare=True)
        counts = {k: None if data.get(k) is None else int(data[k]) for k in ("n_boot", "n_pairs")}
        return cls(_number(data.get("value")), _number(data.get("low")), _number(data.get("high")), **counts)

    @classmethod
    def of(cls, interval: Interval, **counts: int) -> Estimate:
        """An interval as :meth:`~circuits.uncertainty.Interval.as_dict` stores it."""
        return cls.read({**interval.as_dict(), **counts})  # type: ignore[return-value]

    def to_stored(self) -> float | dict[str, Any] | None:
        """The stored form: the bare number, or ``{"value", "low", "high"}`` and the counts written."""
        if self.bare:
            return self.value
        out: dict[str, Any] = {"value": self.value, "low": self.low, "high": self.high}
        for key in ("n_boot", "n_pairs"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def interval(self) -> Interval:
        """The :class:`~circuits.uncertainty.Interval` (a missing number is NaN)."""
        nan = math.nan
        return Interval(
            nan if self.value is None else self.value,
            nan if self.low is None else self.low,
            nan if self.high is None else self.high,
        )

    def shown(self, digits: int = 2) -> str:
        """``value [low, high]`` as the tables print a stored interval (``n/a`` without a value)."""
        return format_stored(self.to_stored(), digits)


def stored(value: Estimate | None) -> float | dict[str, Any] | None:
    """An estimate's stored form; ``None`` for none."""
    return None if value is None else value.to_stored()


def read_stored(what: str, data: Any, read: Callable[[Mapping[str, Any]], T], *, source: str = "") -> T:
    """``read(data)``, a missing or mistyped field reported as an :class:`InputError` naming ``source``."""
    where = f"{source}: " if source else ""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}a {what} is a JSON object, not {type(data).__name__}")
    try:
        return read(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise InputError(f"{where}not a readable {what} ({error!r})") from None


class DictAccess(ABC):
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

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The record as stored: the dict its ``[key]`` reading looks in."""

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
