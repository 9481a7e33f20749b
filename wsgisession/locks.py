"""Session locks in one process: a reentrant gevent lock per session id.

:class:`LockRegistry` keeps one lock per session id while anybody holds or
waits for it, and up to ``KEPT_ENTRIES`` idle ones for reuse (an uncontended
lock is then one non-blocking semaphore acquire and release). The
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


#: idle entries kept for reuse (building one costs ~0.3 us): past this many entries, the idle ones are dropped
KEPT_ENTRIES = 1024


class _Entry:
    """One session id's lock: a gevent semaphore, its owner greenlet and how deep it holds it."""

    __slots__ = ("semaphore", "owner", "users", "depth", "store_lock")

    def __init__(self) -> None:
        self.semaphore = gevent.lock.Semaphore(1)
        self.owner: object = None
        self.users = 0  # holders and waiters: an entry with none is idle (and may be dropped)
        self.depth = 0
        self.store_lock: StoreLock | None = None


class LockRegistry:
    """One reentrant lock per session id, plus the store's cross-process lock."""

    def __init__(self, *, timeout: float, store_lock: Callable[[str], StoreLock] | None = None) -> None:
        self.timeout = timeout
        self._store_lock = store_lock
        self._entries: dict[str, _Entry] = {}  # held, waited for, or idle (see _entry)
        self._sweep_at = KEPT_ENTRIES

    def __len__(self) -> int:
        """The number of session ids currently held or waited for."""
        return sum(1 for entry in self._entries.values() if entry.users)

    def kept(self) -> int:
        """The number of entries in memory (held, waited for, or idle and kept for reuse)."""
        return len(self._entries)

    def held(self, key: str) -> StoreLock | None:
        """The store lock of ``key`` if the current greenlet holds it."""
        entry = self._entries.get(key)
        if entry is None or entry.store_lock is None or entry.owner is not getcurrent():
            return None
        return entry.store_lock

    def hold(self, key: str, timeout: float | None = None) -> Hold:
        """Hold the lock of ``key`` (a context manager); reentrant within one greenlet."""
        return Hold(self, key, self.timeout if timeout is None else timeout)

    def _entry(self, key: str) -> _Entry:
        """A new entry for ``key``; first drops the idle ones if there are too many.

        Past KEPT_ENTRIES, the idle entries are dropped; if most are in use, the
        next sweep waits until the entries have doubled (amortized O(1) per entry).
        """
        entries = self._entries
        if len(entries) >= self._sweep_at:
            for idle in [k for k, entry in entries.items() if not entry.users]:
                del entries[idle]
            self._sweep_at = max(KEPT_ENTRIES, 2 * len(entries))
        entry = entries[key] = _Entry()
        return entry


class Hold:
    """One holding of a registry lock (a class, not a generator: it is on every save's path)."""

    __slots__ = ("registry", "key", "timeout", "entry")

    entry: _Entry  # set by __enter__

    def __init__(self, registry: LockRegistry, key: str, timeout: float) -> None:
        self.registry = registry
        self.key = key
        self.timeout = timeout

    def __enter__(self) -> None:
        registry = self.registry
        entry = registry._entries.get(self.key) or registry._entry(self.key)
        entry.users += 1
        current = getcurrent()
        if entry.owner is current:  # reentrant: the outermost holding has the locks
            entry.depth += 1
        elif entry.owner is None and registry._store_lock is None and entry.semaphore.acquire(False):
            entry.owner, entry.depth = current, 1  # free, and no store lock to take: the usual case
        else:
            self._wait(entry, current)
        self.entry = entry

    def _wait(self, entry: _Entry, current: object) -> None:
        """Take the in-process lock, waiting at most the timeout, then the store lock if any."""
        timeout, store_lock_for = self.timeout, self.registry._store_lock
        started = time.monotonic() if store_lock_for is not None else 0.0
        try:
            if not entry.semaphore.acquire(timeout=timeout):
                raise LockTimeout(_timeout_message(timeout), timeout=timeout)
            entry.owner, entry.depth = current, 1
            if store_lock_for is not None:
                self._store_lock(entry, store_lock_for, started + timeout)
        except BaseException:
            entry.users -= 1
            raise

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

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        entry = self.entry
        entry.depth = depth = entry.depth - 1
        if depth:
            entry.users -= 1
            return
        store_lock = entry.store_lock
        try:
            if store_lock is not None:
                entry.store_lock = None
                store_lock.release()  # may raise: a staged save that failed
        finally:
            entry.owner = None
            entry.users -= 1
            entry.semaphore.release()
