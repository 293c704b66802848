"""Old names kept for one version: each use warns once per call site with a :class:`DeprecationWarning`.

The project renames a word when two meanings collide (channels said writer and
reader for what the graph calls sender and receiver; ``--metric`` on ``circuits
reuse`` meant the similarity). The old spelling keeps working for one version
through the helpers here, and says what to write instead:

- :func:`renamed` warns about any old name (a keyword, an attribute, a value);
- :func:`renamed_keyword` folds an old keyword argument into its new one;
- :func:`old_attributes` adds read-only properties under the old names of a
  class's renamed attributes;
- :func:`renamed_keys` reads a stored record written with the old keys;
- :func:`old_module_names` gives a module a ``__getattr__`` that answers old
  module-level names with the new objects.

Torch-free, and imports nothing of the package.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "OLD_CHANNELS_FILE_KEYS",
    "OLD_CHANNEL_KEYS",
    "old_attributes",
    "old_module_names",
    "renamed",
    "renamed_keys",
    "renamed_keyword",
]

T = TypeVar("T")

OLD_CHANNEL_KEYS = {"writer": "sender", "reader": "receiver"}
"""A stored channel's (and causal check's) keys as 0.4 wrote them, and their names now."""
OLD_CHANNELS_FILE_KEYS = {"writers": "n_senders", "readers": "n_receivers"}
"""The top-level keys of ``channels.json`` as 0.4 wrote them, and their names now."""


def renamed(old: str, new: str, *, what: str = "name", stacklevel: int = 3) -> None:
    """Warn that ``old`` is now ``new`` (``stacklevel`` 3: the caller of the function that calls this).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed("Channel.writer", "Channel.sender", what="attribute")
    >>> str(caught[0].message)
    "the attribute 'Channel.writer' is now 'Channel.sender'; the old name goes away in the next version"
    """
    warnings.warn(
        f"the {what} {old!r} is now {new!r}; the old name goes away in the next version",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_keyword(old: str, old_value: Any, new: str, new_value: T, default: T) -> T:
    """The value of keyword ``new``, taking an old keyword's value (with a warning) when one was given.

    Call it as ``x = renamed_keyword("metric", metric, "similarity", similarity, DEFAULT)``
    where the old keyword defaults to ``None``; giving both is a ``TypeError``.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed_keyword("writers", "heads", "senders", "all", "all")
    'heads'
    >>> caught[0].category.__name__
    'DeprecationWarning'
    >>> renamed_keyword("writers", None, "senders", "mlps", "all")
    'mlps'
    """
    if old_value is None:
        return new_value
    if new_value != default:
        raise TypeError(f"give {new}= only ({old}= is its old name)")
    renamed(old, new, what="keyword argument", stacklevel=4)
    return old_value  # type: ignore[no-any-return]


def old_attributes(names: dict[str, str]) -> Callable[[type[T]], type[T]]:
    """A class decorator: read-only properties ``old`` returning ``self.new``, each with a warning.

    >>> from dataclasses import dataclass
    >>> @old_attributes({"writer": "sender"})
    ... @dataclass
    ... class Row:
    ...     sender: str
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     Row("a0.h1").writer
    'a0.h1'
    """

    def attach(cls: type[T]) -> type[T]:
        for old, new in names.items():

            def getter(self: Any, _old: str = old, _new: str = new) -> Any:
                cls_name = type(self).__name__
                renamed(f"{cls_name}.{_old}", f"{cls_name}.{_new}", what="attribute", stacklevel=3)
                return getattr(self, _new)

            getter.__doc__ = f"Deprecated: the old name of ``{new}``."
            setattr(cls, old, property(getter))
        return cls

    return attach


def old_module_names(module: str, names: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` answering the old names in ``names`` with ``namespace[new]``, with a warning.

    Use it as ``__getattr__ = old_module_names(__name__, {"Writers": "Senders"}, globals())``.
    """

    def old_name(name: str) -> Any:
        if name in names:
            renamed(f"{module}.{name}", f"{module}.{names[name]}", stacklevel=3)
            return namespace[names[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return old_name


def renamed_keys(data: dict[str, Any], old: dict[str, str]) -> dict[str, Any]:
    """``data`` with each old key of ``old`` under its new name (a record stored by the last version).

    Reading an old file is not deprecated use, so nothing warns; a new key
    already present wins over its old one.

    >>> renamed_keys({"writer": "a0.h1", "z": 2.0}, {"writer": "sender"})
    {'sender': 'a0.h1', 'z': 2.0}
    """
    return {old.get(k, k): v for k, v in data.items() if k not in old or old[k] not in data}
