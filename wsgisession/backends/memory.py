"""A Beaker namespace manager that keeps ``str`` values in this process's memory.

One dictionary per process, shared by every store in it, as Beaker's memory
container is; for development and tests. Unlike Beaker's, a namespace that
holds nothing takes no room (Beaker's keeps an empty dictionary for every
namespace it was asked about), and a manager holds no state of its own, so
the store can keep managers for reuse.
"""
from __future__ import annotations

from typing import Any

from beaker.container import NamespaceManager

from .base import Backend

_NAMESPACES: dict[str, dict[str, str]] = {}


def namespaces() -> list[str]:
    """The namespaces that hold something, sorted."""
    return sorted(_NAMESPACES)


class MemoryNamespaceManager(NamespaceManager):  # type: ignore[misc]
    """Stores ``str`` values in a dictionary of this process."""

    def __init__(self, namespace: str, **_: Any) -> None:
        super().__init__(namespace)

    def __getitem__(self, key: str) -> str:
        return _NAMESPACES[self.namespace][key]  # KeyError for a missing namespace or key

    def __contains__(self, key: object) -> bool:
        return key in _NAMESPACES.get(self.namespace, ())

    def has_key(self, key: str) -> bool:
        return key in self

    def set_value(self, key: str, value: str, expiretime: int | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError("the wsgisession memory backend stores str values only")
        values = _NAMESPACES.get(self.namespace)
        if values is None:
            values = _NAMESPACES[self.namespace] = {}
        values[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        values = _NAMESPACES[self.namespace]
        del values[key]
        if not values:
            del _NAMESPACES[self.namespace]

    def do_remove(self) -> None:
        _NAMESPACES.pop(self.namespace, None)

    def keys(self) -> list[str]:
        return list(_NAMESPACES.get(self.namespace, ()))


class MemoryBackend(Backend):
    """The memory store: this process's dictionary; the in-process lock is the only lock needed."""

    name = "memory"

    def __init__(self, **options: Any) -> None:
        super().__init__(MemoryNamespaceManager, **options)
