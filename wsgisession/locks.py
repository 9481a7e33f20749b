"""Session locks: greenlet-safe in one process, and across processes.

:class:`LockRegistry` keeps one reentrant gevent lock per session id while anybody
holds or waits for it (and forgets it afterwards, so idle sessions cost
nothing). The first holder in a process also takes a *store lock* that
serializes processes: :class:`FileLock` (a non-blocking ``flock`` polled with
gevent sleeps, never a blocking call that would freeze the process) or
:class:`RedisLock` (a Redis lock with a short TTL, renewed while held, so a
holder that dies frees it within the TTL; taking it also reads the session, in
the same write (``SET NX PX`` and ``GET``, pipelined), and a Lua script writes
the session as it releases the lock, so an atomic update costs two round trips,
and a holder whose lock expired writes nothing).
Every wait is bounded and ends in :class:`~wsgisession.errors.LockTimeout`.

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
from typing import TYPE_CHECKING, Any, Callable, Protocol

import gevent
import gevent.lock
from gevent import getcurrent

from .errors import LockTimeout

if TYPE_CHECKING:
    import redis

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

    def __init__(self, path: str, *, make_directory: Callable[[], None] | None = None) -> None:
        self.path = path
        self._make_directory = make_directory  # called if the lock's directory does not exist yet
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            if self._make_directory is None:
                raise
            self._make_directory()
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        poll = _POLL_MIN
        while True:
            fd = self._open()
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


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
# ARGV: token, operation ('' | 'set' | 'del'), value, expiry seconds ('' for none)
_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'set' then
  if ARGV[4] ~= '' then redis.call('set', KEYS[2], ARGV[3], 'EX', ARGV[4]) else redis.call('set', KEYS[2], ARGV[3]) end
elseif ARGV[2] == 'del' then
  redis.call('del', KEYS[2])
end
redis.call('del', KEYS[1])
return 1
"""
_UNREAD = object()


def _scripts(client: redis.Redis[bytes]) -> tuple[Any, Any]:
    """The lock's Lua scripts, registered once per client (then run by SHA), kept on the client."""
    scripts: tuple[Any, Any] | None = getattr(client, "_wsgisession_lock_scripts", None)
    if scripts is None:
        scripts = (client.register_script(_RENEW), client.register_script(_RELEASE))
        setattr(client, "_wsgisession_lock_scripts", scripts)  # noqa: B010
    return scripts


class RedisLock:
    """A Redis lock with a short TTL, renewed while held, that can carry the data key.

    With ``data_key`` the lock reads that key in the same round trip that takes
    the lock (:attr:`value`), and a write or delete made while it is held
    (:meth:`stage`) happens in the round trip that releases it, only if the
    lock is still ours: a holder that lost its lock (a pause longer than the
    TTL) cannot overwrite the next holder's save.
    """

    def __init__(self, client: redis.Redis[bytes], name: str, *, ttl: float, data_key: str | None = None) -> None:
        from .backends.redis_commands import commands_for  # redis is an optional extra

        self._client = client
        self._commands = commands_for(client)
        self._renew_script, self._release_script = _scripts(client)
        self._name = name
        self._data_key = data_key or name
        self._ttl = ttl
        self._token = os.urandom(16).hex()
        self._timer: Any = None
        self.value: object = _UNREAD
        self._staged: tuple[str, str, str] = ("", "", "")

    @property
    def prefetched(self) -> bool:
        return self.value is not _UNREAD

    def stage(self, operation: str, value: str = "", expiry: int | None = None) -> None:
        """Write (``set``) or delete (``del``) the data key when the lock is released."""
        self._staged = (operation, value, "" if expiry is None else str(int(expiry)))
        self.value = value.encode("utf-8") if operation == "set" else None

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        poll = _POLL_MIN
        ttl_ms = str(max(1, int(self._ttl * 1000)))
        take = ("SET", self._name, self._token, "NX", "PX", ttl_ms)
        while True:
            if self._data_key == self._name:
                taken, value = self._commands.execute(*take), None
            else:  # the read rides along in the same write: no one writes the data key without the lock
                taken, value = self._commands.execute_many(take, ("GET", self._data_key))
            if taken is not None:
                break
            if time.monotonic() >= deadline:
                raise LockTimeout(_timeout_message(timeout), timeout=timeout)
            poll = _backoff(poll)
        if self._data_key != self._name:
            self.value = value
        self._timer = gevent.get_hub().loop.timer(self._ttl / 3, self._ttl / 3)
        self._timer.start(lambda: gevent.spawn(self._renew))

    def _renew(self) -> None:
        if self._timer is None:
            return  # released meanwhile
        try:
            renewed = self._renew_script(keys=[self._name], args=[self._token, str(int(self._ttl * 1000))])
        except Exception as exc:  # Redis unreachable: try again, it may still be ours
            if self._timer is not None:
                log.warning("could not renew a session lock: %s", exc)
            return
        if not renewed and self._timer is not None:
            log.warning("a session lock expired while held; stopped renewing it")
            self._stop_timer()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def release(self) -> None:
        self._stop_timer()
        operation, value, expiry = self._staged
        self._staged = ("", "", "")
        try:
            released = self._commands.run_script(
                self._release_script, [self._name, self._data_key], [self._token, operation, value, expiry]
            )
        except Exception as exc:
            if operation:
                raise  # the staged save did not happen: the caller must know
            log.warning("could not release a session lock (it expires within %.3gs): %s", self._ttl, exc)
            return
        if not released:
            log.warning("a session lock expired before it was released")
            if operation:
                raise LockTimeout("the session lock expired before the save; nothing was written", timeout=self._ttl)


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
