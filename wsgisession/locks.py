"""Session locks in one process: a reentrant gevent lock per session id.

:class:`LockRegistry` keeps one lock per session id while anybody holds or
waits for it (and forgets it afterwards, so idle sessions cost nothing). The
first holder in a process also takes a *store lock* that serializes processes
(:mod:`wsgisession.store_locks`: a polled file lock, or a Redis lock with a TTL).
Every wait is bounded and ends in :class:`~wsgisession.errors.LockTimeout`.

    registry = LockRegistry(timeout=5.0, store_lock=lambda sid: FileLock(path_for(sid)))
    with registry.hold(session_id):
        ...  # load, modify, save
"""
from __future__ import annotations

import time
from typing import Callable, Protocol

import gevent.lock
from gevent import getcurrent

from .errors import LockTimeout


class StoreLock(Protocol):
    """A lock shared by every process using the same store."""

    def acquire(self, timeout: float) -> None: ...

    def release(self) -> None: ...


def _timeout_message(timeout: float) -> str:
    return f"session lock not acquired within {timeout:.3g}s"


_SPARE_ENTRIES = 256  # unused lock entries kept for reuse (building one costs ~0.3 us)


class _Entry:
    """One session id's lock: a gevent semaphore, its owner greenlet and how deep it holds it."""

    __slots__ = ("semaphore", "owner", "users", "depth", "store_lock")

    def __init__(self) -> None:
        self.semaphore = gevent.lock.Semaphore(1)
        self.owner: object = None
        self.users = 0  # holders and waiters: the entry is forgotten when none is left
        self.depth = 0
        self.store_lock: StoreLock | None = None


class LockRegistry:
    """One reentrant lock per session id, plus the store's cross-process lock."""

    def __init__(self, *, timeout: float, store_lock: Callable[[str], StoreLock] | None = None) -> None:
        self.timeout = timeout
        self._store_lock = store_lock
        self._entries: dict[str, _Entry] = {}
        self._spare: list[_Entry] = []

    def __len__(self) -> int:
        """The number of session ids currently held or waited for."""
        return len(self._entries)

    def held(self, key: str) -> StoreLock | None:
        """The store lock of ``key`` if the current greenlet holds it."""
        entry = self._entries.get(key)
        if entry is None or entry.store_lock is None or entry.owner is not getcurrent():
            return None
        return entry.store_lock

    def hold(self, key: str, timeout: float | None = None) -> _Hold:
        """Hold the lock of ``key`` (a context manager); reentrant within one greenlet."""
        return _Hold(self, key, self.timeout if timeout is None else timeout)

    def _leave(self, key: str, entry: _Entry) -> None:
        entry.users -= 1
        if not entry.users:
            del self._entries[key]
            if len(self._spare) < _SPARE_ENTRIES:  # unlocked and unused: reuse it for the next key
                self._spare.append(entry)


class _Hold:
    """One holding of a registry lock (a class, not a generator: it is on every save's path)."""

    __slots__ = ("registry", "key", "timeout", "entry")

    def __init__(self, registry: LockRegistry, key: str, timeout: float) -> None:
        self.registry = registry
        self.key = key
        self.timeout = timeout
        self.entry: _Entry | None = None

    def __enter__(self) -> None:
        registry, key = self.registry, self.key
        entry = registry._entries.get(key)
        if entry is None:
            spare = registry._spare
            entry = registry._entries[key] = spare.pop() if spare else _Entry()
        entry.users += 1
        current = getcurrent()
        if entry.owner is current:  # reentrant: the outermost holding has the locks
            entry.depth += 1
        else:
            timeout, store_lock_for = self.timeout, registry._store_lock
            started = time.monotonic() if store_lock_for is not None else 0.0
            try:
                if not entry.semaphore.acquire(timeout=timeout):
                    raise LockTimeout(_timeout_message(timeout), timeout=timeout)
                entry.owner, entry.depth = current, 1
                if store_lock_for is not None:
                    self._store_lock(entry, store_lock_for, started + timeout)
            except BaseException:
                registry._leave(key, entry)
                raise
        self.entry = entry

    def _store_lock(self, entry: _Entry, store_lock_for: Callable[[str], StoreLock], deadline: float) -> None:
        """Take the cross-process lock too (the in-process one is ours); release both on failure."""
        try:
            store_lock = store_lock_for(self.key)
            try:
                store_lock.acquire(max(0.0, deadline - time.monotonic()))
            except LockTimeout as exc:  # report the whole wait, not what was left of it
                raise LockTimeout(_timeout_message(self.timeout), timeout=self.timeout) from exc
        except BaseException:
            entry.owner, entry.depth = None, 0
            entry.semaphore.release()
            raise
        entry.store_lock = store_lock

    def __exit__(self, *exc_info: object) -> None:
        entry = self.entry
        assert entry is not None
        self.entry = None
        entry.depth -= 1
        try:
            if entry.depth == 0 and entry.store_lock is not None:
                store_lock, entry.store_lock = entry.store_lock, None
                store_lock.release()  # may raise: a staged save that failed
        finally:
            if entry.depth == 0:
                entry.owner = None
                entry.semaphore.release()
            self.registry._leave(self.key, entry)
