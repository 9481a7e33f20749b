"""Session locks in one process: a reentrant gevent lock per session id.

:class:`LockRegistry` keeps one lock per session id while anybody holds or
waits for it, and up to ``KEPT_ENTRIES`` idle ones for reuse (an uncontended
lock is then a few attribute updates; a gevent semaphore serves the waits). The
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


class Entry:
    """One session id's lock: a gevent semaphore, its owner greenlet and how deep it holds it.

    A lock nobody else holds or waits for is taken *bare*, without the
    semaphore: the first greenlet that comes to wait takes the semaphore on the
    holder's behalf, so waiting and handing over always go through it.
    """

    __slots__ = ("semaphore", "owner", "users", "depth", "store_lock", "bare")

    def __init__(self) -> None:
        self.semaphore = gevent.lock.Semaphore(1)
        self.owner: object = None
        self.users = 0  # holders and waiters: an entry with none is idle (and may be dropped)
        self.depth = 0
        self.store_lock: StoreLock | None = None
        self.bare = False  # held without the semaphore (then its count is 1 and nobody waits on it)


class LockRegistry:
    """One reentrant lock per session id, plus the store's cross-process lock."""

    def __init__(self, *, timeout: float, store_lock: Callable[[str], StoreLock] | None = None) -> None:
        self.timeout = timeout
        self._store_lock = store_lock
        self._entries: dict[str, Entry] = {}  # held, waited for, or idle (see _entry)
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

    def acquire(self, key: str, timeout: float | None = None) -> Entry:
        """Take the lock of ``key`` (reentrant within one greenlet); :meth:`release` the entry it returns.

        :meth:`hold` is the usual form; this pair spares a context manager on hot paths.
        """
        entry = self._entries.get(key) or self._entry(key)
        current = getcurrent()
        if entry.owner is current:  # reentrant: the outermost holding has the locks
            entry.users += 1
            entry.depth += 1
        elif not entry.users and self._store_lock is None:  # nobody holds or waits: the usual case
            entry.users, entry.owner, entry.depth, entry.bare = 1, current, 1, True
        else:
            entry.users += 1
            if entry.bare:  # take the semaphore for the bare holder, then wait for it like everybody
                taken = entry.semaphore.acquire(False)
                assert taken, "a bare lock's semaphore is free"
                entry.bare = False
            self._wait(key, entry, current, self.timeout if timeout is None else timeout)
        return entry

    def release(self, entry: Entry) -> None:
        """Give back one holding taken by :meth:`acquire` (the last one releases the locks)."""
        entry.depth = depth = entry.depth - 1
        if depth:
            entry.users -= 1
            return
        if entry.bare:  # nobody came to wait: the semaphore was never taken
            entry.owner, entry.bare = None, False
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

    def _wait(self, key: str, entry: Entry, current: object, timeout: float) -> None:
        """Take the in-process lock, waiting at most ``timeout``, then the store lock if any."""
        store_lock_for = self._store_lock
        started = time.monotonic() if store_lock_for is not None else 0.0
        try:
            if not entry.semaphore.acquire(timeout=timeout):
                raise LockTimeout(_timeout_message(timeout), timeout=timeout)
            entry.owner, entry.depth = current, 1
            if store_lock_for is not None:
                _take_store_lock(key, entry, store_lock_for, timeout, started + timeout)
        except BaseException:
            entry.users -= 1
            raise

    def _entry(self, key: str) -> Entry:
        """A new entry for ``key``; first drops the idle ones if there are too many.

        Past KEPT_ENTRIES, the idle entries are dropped; if most are in use, the
        next sweep waits until the entries have doubled (amortized O(1) per entry).
        """
        entries = self._entries
        if len(entries) >= self._sweep_at:
            for idle in [k for k, entry in entries.items() if not entry.users]:
                del entries[idle]
            self._sweep_at = max(KEPT_ENTRIES, 2 * len(entries))
        entry = entries[key] = Entry()
        return entry


def _take_store_lock(
    key: str, entry: Entry, store_lock_for: Callable[[str], StoreLock], timeout: float, deadline: float
) -> None:
    """Take the cross-process lock too (the in-process one is ours); release both on failure."""
    try:
        store_lock = store_lock_for(key)
        try:
            store_lock.acquire(max(0.0, deadline - time.monotonic()))
        except LockTimeout as exc:  # report the whole wait, not what was left of it
            raise LockTimeout(_timeout_message(timeout), timeout=timeout) from exc
    except BaseException:
        entry.owner, entry.depth = None, 0
        entry.semaphore.release()
        raise
    entry.store_lock = store_lock


class Hold:
    """One holding of a registry lock, as a context manager."""

    __slots__ = ("registry", "key", "timeout", "entry")

    entry: Entry  # set by __enter__

    def __init__(self, registry: LockRegistry, key: str, timeout: float) -> None:
        self.registry = registry
        self.key = key
        self.timeout = timeout

    def __enter__(self) -> None:
        self.entry = self.registry.acquire(self.key, self.timeout)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.registry.release(self.entry)
