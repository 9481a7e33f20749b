"""The session store: JSON text by session id, in a Beaker backend, with locks.

This is the seam between wsgisession and Beaker. It knows session ids and
text, nothing of HTTP or Socket.IO. Backends:

``memory``
    :class:`wsgisession.backends.memory.MemoryNamespaceManager`: this process's
    dictionary (one process only; tests, development).
``file`` (default)
    :class:`wsgisession.backends.file.FileNamespaceManager` under ``data_dir``.
``ext:redis`` (or ``redis``)
    :class:`wsgisession.backends.redis.RedisNamespaceManager` at ``url``.

Beaker's pickling backends are refused rather than silently used.
"""
from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager
from typing import Any, Callable

from beaker.container import NamespaceManager

from .backends.file import FileNamespaceManager
from .backends.memory import MemoryNamespaceManager
from .cookies import is_session_id
from .errors import ConfigurationError, StoreUnavailable
from .locks import Entry, LockRegistry, StoreLock
from .store_locks import FileLock, RedisLock

log = logging.getLogger(__name__)

_KEY = "session"
_ALIASES = {"file": "file", "memory": "memory", "ext:redis": "redis", "redis": "redis"}

try:
    from redis import RedisError as _RedisError
except ImportError:  # pragma: no cover - redis is an optional extra
    _RedisError = OSError  # type: ignore[assignment,misc]

_FAULTS: tuple[type[BaseException], ...] = (OSError, _RedisError)

#: namespace managers kept for reuse, per store (they hold no data; building one costs about as much as a read)
_MANAGERS = 4096


_checked: object = None  # the last id that passed _check (a lock, a read and a write follow each other)


def _check(session_id: str) -> None:
    """Refuse anything but an id we issue before it becomes a key or a path."""
    global _checked
    if session_id is _checked:  # the very string object checked last: already checked
        return
    if not is_session_id(session_id):
        raise ValueError("not a session id")
    _checked = session_id


class Store:
    """Reads and writes session records; hands out the per-session lock."""

    def __init__(
        self,
        *,
        type: str = "file",
        data_dir: str | None = None,
        url: str | None = None,
        lock_timeout: float = 5.0,
        lock_ttl: float = 5.0,
        locking: bool = True,
        **options: Any,
    ) -> None:
        backend = _ALIASES.get(type)
        if backend is None:
            raise ConfigurationError(
                f"session type {type!r} is not supported: use 'file', 'ext:redis' or 'memory' "
                "(Beaker's other backends unpickle what they read)",
                key="type",
                value=type,
            )
        self.backend = backend
        self.locking = locking  # off only to measure what locks cost (benchmarks)
        self.expires = backend == "redis"  # whether the backend drops records past a write's ttl
        self._options: dict[str, Any] = dict(options)
        self._cls: Callable[..., NamespaceManager]
        store_lock: Callable[[str], StoreLock] | None = None
        if backend == "file":
            if not data_dir:
                raise ConfigurationError("the file store needs data_dir", key="data_dir")
            os.makedirs(data_dir, mode=0o700, exist_ok=True)
            self._options["data_dir"] = data_dir
            self._cls = FileNamespaceManager
            store_lock = self._file_lock
        elif backend == "redis":
            from .backends.redis import RedisNamespaceManager, client_for

            if not url:
                raise ConfigurationError("the Redis store needs url", key="url")
            self._cls = RedisNamespaceManager
            self._redis = client_for(url, socket_timeout=float(self._options.get("socket_timeout", 5.0)))
            self._options["url"] = self._redis  # the managers share this client (and skip a lookup)
            self._lock_ttl = lock_ttl
            store_lock = self._redis_lock
        else:
            self._cls = MemoryNamespaceManager
        self.locks = LockRegistry(timeout=lock_timeout, store_lock=store_lock)
        self._managers: dict[str, NamespaceManager] = {}

    def _manager(self, session_id: str) -> NamespaceManager:
        manager = self._managers.get(session_id)
        if manager is None:
            _check(session_id)
            managers = self._managers
            if len(managers) >= _MANAGERS:
                del managers[next(iter(managers))]  # the oldest
            manager = managers[session_id] = self._cls(session_id, **self._options)
        return manager

    def _file_lock(self, session_id: str) -> StoreLock:
        manager = self._manager(session_id)
        assert isinstance(manager, FileNamespaceManager)
        return FileLock(manager.lock_path(create_directories=False), make_directory=manager.make_directories)

    def _redis_lock(self, session_id: str) -> StoreLock:
        data_key = self._manager(session_id).key(_KEY)
        return RedisLock(self._redis, f"wsgisession-lock:{session_id}", ttl=self._lock_ttl, data_key=data_key)

    def _held(self, session_id: str) -> RedisLock | None:
        """The Redis lock this greenlet holds on a session: it carries reads and writes.

        ``None`` under any other store lock; callers skip the call for other backends.
        """
        lock = self.locks.held(session_id)
        return lock if isinstance(lock, RedisLock) and lock.prefetched else None

    def _fault(self, exc: BaseException) -> StoreUnavailable:
        log.error("the %s session store is unavailable: %s", self.backend, exc)
        return StoreUnavailable(f"the {self.backend} session store is unavailable", backend=self.backend)

    def read(self, session_id: str) -> str | None:
        """The stored text of a session, or ``None`` if there is none."""
        held = self._held(session_id) if self.backend == "redis" else None
        if held is not None:  # read when the lock was taken, or staged since
            return _text(held.value)
        manager = self._managers.get(session_id)  # the usual case, without a call
        try:
            if manager is None:
                manager = self._manager(session_id)
            return str(manager[_KEY])
        except KeyError:
            return None
        except _FAULTS as exc:
            raise self._fault(exc) from exc

    def write(self, session_id: str, text: str, *, ttl: int | None = None) -> None:
        """Store ``text``; ``ttl`` (seconds) lets the backend expire it."""
        held = self._held(session_id) if self.backend == "redis" else None
        if held is not None:
            held.stage("set", text, ttl)  # written when the lock is released, if still ours
            return
        try:
            manager = self._managers.get(session_id)
            if manager is None:
                manager = self._manager(session_id)
            if isinstance(manager, FileNamespaceManager):
                manager.replace_value(_KEY, text)  # the session is the file's only key: no read first
            else:
                manager.set_value(_KEY, text, expiretime=ttl)
        except _FAULTS as exc:
            raise self._fault(exc) from exc

    def remove(self, session_id: str) -> None:
        """Forget a session (no error if it is already gone)."""
        held = self._held(session_id) if self.backend == "redis" else None
        if held is not None:
            held.stage("del")
            return
        manager = self._manager(session_id)
        try:
            if self.backend == "redis":
                del manager[_KEY]  # one key: do_remove() would SCAN the whole keyspace
            else:
                manager.do_remove()
        except KeyError:
            pass
        except _FAULTS as exc:
            raise self._fault(exc) from exc

    def lock(self, session_id: str, *, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the session's lock (in-process and cross-process)."""
        return _Lock(self, session_id, timeout)

    def acquire(self, session_id: str, timeout: float | None = None) -> Entry | None:
        """Take the session's lock; :meth:`release` what it returns (:meth:`lock` is the usual form).

        A store fault while taking the cross-process lock raises StoreUnavailable.
        """
        if session_id is not _checked:
            _check(session_id)
        if not self.locking:
            return None
        try:
            return self.locks.acquire(session_id, timeout)
        except _FAULTS as exc:
            raise self._fault(exc) from exc

    def release(self, entry: Entry | None) -> None:
        """Give back a lock taken by :meth:`acquire` (a staged Redis save that fails raises StoreUnavailable)."""
        if entry is None:
            return
        try:
            self.locks.release(entry)
        except _FAULTS as exc:
            raise self._fault(exc) from exc


class _Lock(AbstractContextManager[None]):
    """:meth:`Store.lock`: the session's lock as a context manager."""

    __slots__ = ("_store", "_session_id", "_timeout", "_entry")

    def __init__(self, store: Store, session_id: str, timeout: float | None) -> None:
        self._store = store
        self._session_id = session_id
        self._timeout = timeout

    def __enter__(self) -> None:
        self._entry = self._store.acquire(self._session_id, self._timeout)

    def __exit__(self, *exc_info: object) -> None:
        self._store.release(self._entry)


def _text(value: object) -> str | None:
    """A value read from Redis as text; ``None`` if missing or not UTF-8."""
    if not isinstance(value, bytes):
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None
