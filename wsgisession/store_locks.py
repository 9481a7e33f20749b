"""The cross-process store locks: a polled file lock and a Redis lock with a TTL.

:class:`FileLock` is a non-blocking ``flock`` polled with gevent sleeps, never a
blocking call that would freeze the process. :class:`RedisLock` is a Redis lock
with a short TTL, renewed while held, so a holder that dies frees it within the
TTL; taking it also reads the session in the same write (``SET NX PX`` and
``GET``, pipelined), and a Lua script writes the session as it releases the lock,
so an atomic update costs two round trips, and a holder whose lock expired
writes nothing. :class:`~wsgisession.locks.LockRegistry` takes them once per
process, under its in-process lock.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Callable

import gevent

from .errors import LockTimeout
from .locks import _timeout_message

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

_POLL_MIN = 0.002
_POLL_MAX = 0.02


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
