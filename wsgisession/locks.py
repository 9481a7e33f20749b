"""Session locks: greenlet-safe in one process, and across processes.

:class:`LockRegistry` keeps one gevent ``RLock`` per session id while anybody
holds or waits for it (and forgets it afterwards, so idle sessions cost
nothing). The first holder in a process also takes a *store lock* that
serializes processes: :class:`FileLock` (a non-blocking ``flock`` polled with
gevent sleeps, never a blocking call that would freeze the process) or
:class:`RedisLock` (a Redis lock with a short TTL, renewed while held, so a
holder that dies frees it within the TTL). Every wait is bounded and ends in
:class:`~wsgisession.errors.LockTimeout`.

    registry = LockRegistry(timeout=5.0, store_lock=lambda sid: FileLock(path_for(sid)))
    with registry.hold(session_id):
        ...  # load, modify, save
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

import gevent
import gevent.lock

from .errors import LockTimeout

if TYPE_CHECKING:
    import redis
    import redis.lock

log = logging.getLogger(__name__)

_POLL_MIN = 0.002
_POLL_MAX = 0.02


class StoreLock(Protocol):
    """A lock shared by every process using the same store."""

    def acquire(self, timeout: float) -> None: ...

    def release(self) -> None: ...


def _timeout_message(timeout: float) -> str:
    return f"session lock not acquired within {timeout:.3g}s"


def _backoff(poll: float) -> float:
    gevent.sleep(poll)
    return min(poll * 2, _POLL_MAX)


class FileLock:
    """An exclusive lock on a file, polled without ever blocking the process.

    The lock file is removed on release; a waiter that locked a file which was
    removed meanwhile notices it (inode check) and tries again. The kernel
    drops the lock of a process that dies.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        poll = _POLL_MIN
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            else:
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self._fd = fd
                    return
                os.close(fd)
                continue
            if time.monotonic() >= deadline:
                raise LockTimeout(_timeout_message(timeout), timeout=timeout)
            poll = _backoff(poll)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor drops the flock


class RedisLock:
    """A Redis lock with a short TTL, renewed by a greenlet while it is held."""

    def __init__(self, client: redis.Redis[bytes], name: str, *, ttl: float) -> None:
        self._lock: redis.lock.Lock = client.lock(name, timeout=ttl, thread_local=False)
        self._ttl = ttl
        self._renewer: gevent.Greenlet[[], None] | None = None

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        poll = _POLL_MIN
        while not self._lock.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise LockTimeout(_timeout_message(timeout), timeout=timeout)
            poll = _backoff(poll)
        self._renewer = gevent.spawn(self._renew)

    def _renew(self) -> None:
        from redis.exceptions import LockNotOwnedError

        while True:
            gevent.sleep(self._ttl / 3)
            try:
                self._lock.reacquire()
            except LockNotOwnedError:  # expired (a pause longer than the TTL): another may own it now
                log.warning("a session lock expired while held; stopped renewing it")
                return
            except Exception as exc:  # Redis unreachable: try again, it may still be ours
                log.warning("could not renew a session lock: %s", exc)

    def release(self) -> None:
        from redis.exceptions import LockNotOwnedError

        if self._renewer is not None:
            self._renewer.kill()  # waits, so it cannot renew after the release below
            self._renewer = None
        try:
            self._lock.release()
        except LockNotOwnedError:
            log.warning("a session lock expired before it was released")
        except Exception as exc:  # Redis unreachable: the lock expires by itself within the TTL
            log.warning("could not release a session lock (it expires within %.3gs): %s", self._ttl, exc)


class _Entry:
    __slots__ = ("lock", "users", "depth", "store_lock")

    def __init__(self) -> None:
        self.lock = gevent.lock.RLock()
        self.users = 0
        self.depth = 0
        self.store_lock: StoreLock | None = None


class LockRegistry:
    """One reentrant lock per session id, plus the store's cross-process lock."""

    def __init__(self, *, timeout: float, store_lock: Callable[[str], StoreLock] | None = None) -> None:
        self.timeout = timeout
        self._store_lock = store_lock
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """The number of session ids currently held or waited for."""
        return len(self._entries)

    @contextmanager
    def hold(self, key: str, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock of ``key``; reentrant within one greenlet."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            if not entry.lock.acquire(timeout=timeout):
                raise LockTimeout(_timeout_message(timeout), timeout=timeout)
            try:
                entry.depth += 1
                if entry.depth == 1 and self._store_lock is not None:
                    store_lock = self._store_lock(key)
                    try:
                        store_lock.acquire(max(0.0, deadline - time.monotonic()))
                    except LockTimeout as exc:  # report the whole wait, not what was left of it
                        raise LockTimeout(_timeout_message(timeout), timeout=timeout) from exc
                    entry.store_lock = store_lock
                yield
            finally:
                entry.depth -= 1
                try:
                    if entry.depth == 0 and entry.store_lock is not None:
                        store_lock, entry.store_lock = entry.store_lock, None
                        store_lock.release()
                finally:
                    entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
