"""Pickle-free Beaker backends: session data is JSON text, stored verbatim.

Beaker's own file, dbm and Redis containers unpickle what they read
(CVE-2013-7489), so whoever can write to the store could run code. These
namespace managers store and return ``str`` values only. They are registered
as Beaker backends (``beaker.backends`` entry points ``wsgisession.sqlite``,
``wsgisession.file``, ``wsgisession.redis`` and ``wsgisession.memory``) and are
what ``type = sqlite`` (the default), ``type = file``, ``type = ext:redis`` and
``type = memory`` mean under wsgisession. Used under
plain Beaker instead, they still never
unpickle, but Beaker's ``Session`` serializes the data itself before storing
it, with pickle unless ``data_serializer = json``: set that, or it unpickles.

Each backend module also holds the store's view of it, a
:class:`~wsgisession.backends.base.Backend` with its transaction:
:func:`backend_for` picks it by the session ``type``.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from .base import Backend

#: session ``type`` values and the backends they mean
TYPES = {"sqlite": "sqlite", "file": "file", "memory": "memory", "ext:redis": "redis", "redis": "redis"}


def backend_for(type: str, *, data_dir: str | None = None, url: str | None = None, **options: Any) -> Backend:
    """The backend of a session ``type`` (``sqlite``, ``file``, ``memory``, ``ext:redis``); Beaker's pickling ones are refused."""
    name = TYPES.get(type)
    if name is None:
        raise ConfigurationError(
            f"session type {type!r} is not supported: use 'sqlite', 'file', 'ext:redis' or 'memory' "
            "(Beaker's other backends unpickle what they read)",
            key="type",
            value=type,
        )
    if name == "sqlite":
        from .sqlite import SqliteBackend

        return SqliteBackend(data_dir=data_dir, url=url, **options)
    if name == "file":
        from .file import FileBackend

        if not data_dir:
            raise ConfigurationError("the file store needs data_dir", key="data_dir")
        return FileBackend(data_dir=data_dir, **options)
    if name == "redis":
        from .redis import RedisBackend  # redis is an optional extra

        if not url:
            raise ConfigurationError("the Redis store needs url", key="url")
        return RedisBackend(url=url, **options)
    from .memory import MemoryBackend

    options.pop("lock_ttl", None)
    options.pop("lock_timeout", None)
    return MemoryBackend(**options)
