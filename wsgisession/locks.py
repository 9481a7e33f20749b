"""Session locks: a reentrant gevent lock per session id, and the locks that serialize processes.

:class:`LockRegistry` keeps one lock per session id while anybody holds or
waits for it, and up to ``KEPT_ENTRIES`` idle ones for reuse: an uncontended
lock is a few attribute updates, a gevent semaphore serves the waits. The
store (:mod:`wsgisession.store`) takes it first, then, as its outermost holder
in the process, its backend's transaction, which takes a *store lock* shared by
every process of the store:

- :class:`FileLock`: a non-blocking ``flock`` polled with gevent sleeps, never a
  blocking call that would freeze the process;
- :class:`RedisLock`: a Redis key with a short TTL, renewed while held, so a
  holder that dies frees it within the TTL.

All of them have one API, ``acquire(timeout)`` and ``release()``, and every
wait is bounded and ends in :class:`~wsgisession.errors.LockTimeout`. A lock
does no I/O of the data it guards; the Redis lock can carry one command of its
holder's in the round trip that takes it and one write in the round trip that
releases it (so an atomic update costs two round trips), and the write happens
only if the lock is still held.

    registry = LockRegistry(timeout=5.0)
    entry = registry.acquire(session_id)
    try:
        ...  # load, modify, save
    finally:
        registry.release(entry)
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Callable

import gevent
import gevent.lock
from gevent import getcurrent

from .errors import LockTimeout

if TYPE_CHECKING:
    import redis

    from .redis_client import LazyCluster
    from .redis_commands import LuaScript

log = logging.getLogger(__name__)


def timeout_message(timeout: float) -> str:
    """The message of a LockTimeout after waiting ``timeout`` seconds."""
    return f"session lock not acquired within {timeout:.3g}s"


#: idle entries kept for reuse (building one costs ~0.3 us): past this many entries, the idle ones are dropped
KEPT_ENTRIES = 1024


class Entry:
    """One session id's lock: a gevent semaphore, its owner greenlet and how deep it holds it.

    A lock nobody else holds or waits for is taken *bare*, without the
    semaphore: the first greenlet that comes to wait takes the semaphore on the
    holder's behalf, so waiting and handing over always go through it.
    ``held`` is the holder's own: the store keeps the backend transaction there.
    """

    __slots__ = ("semaphore", "owner", "users", "depth", "bare", "held", "waited")

    def __init__(self) -> None:
        self.semaphore = gevent.lock.Semaphore(1)
        self.owner: object = None
        self.users = 0  # holders and waiters: an entry with none is idle (and may be dropped)
        self.depth = 0
        self.bare = False  # held without the semaphore (then its count is 1 and nobody waits on it)
        self.held: Any = None
        self.waited = 0.0  # seconds the last holder waited for it (0 when it was taken bare)


class LockRegistry:
    """One reentrant lock per session id, for the greenlets of this process."""

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._entries: dict[str, Entry] = {}  # held, waited for, or idle (see _entry)
        self._sweep_at = KEPT_ENTRIES

    def __len__(self) -> int:
        """The number of session ids currently held or waited for."""
        return sum(1 for entry in self._entries.values() if entry.users)

    def kept(self) -> int:
        """The number of entries in memory (held, waited for, or idle and kept for reuse)."""
        return len(self._entries)

    def acquire(self, key: str, timeout: float | None = None) -> Entry:
        """Take the lock of ``key`` (reentrant within one greenlet); :meth:`release` the entry it returns.

        ``entry.depth`` is 1 for the outermost holding; ``entry.waited`` is how long it waited.
        """
        entry = self._entries.get(key) or self._entry(key)
        current = getcurrent()
        if entry.owner is current:  # reentrant
            entry.users += 1
            entry.depth += 1
        elif not entry.users:  # nobody holds or waits: the usual case
            entry.users, entry.owner, entry.depth, entry.bare, entry.waited = 1, current, 1, True, 0.0
        else:
            entry.users += 1
            if entry.bare:  # take the semaphore for the bare holder, then wait for it like everybody
                taken = entry.semaphore.acquire(False)
                assert taken, "a bare lock's semaphore is free"
                entry.bare = False
            timeout = self.timeout if timeout is None else timeout
            started = time.monotonic()
            try:
                if not entry.semaphore.acquire(timeout=timeout):
                    raise LockTimeout(timeout_message(timeout), timeout=timeout)
            except BaseException:
                entry.users -= 1
                raise
            entry.owner, entry.depth, entry.waited = current, 1, time.monotonic() - started
        return entry

    def release(self, entry: Entry) -> None:
        """Give back one holding taken by :meth:`acquire`."""
        entry.depth = depth = entry.depth - 1
        entry.users -= 1
        if depth:
            return
        entry.owner = None
        if entry.bare:  # nobody came to wait: the semaphore was never taken
            entry.bare = False
        else:
            entry.semaphore.release()

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


# -- the locks that serialize processes -----------------------------------------
#: the first and the longest sleep between two tries of a lock held elsewhere (seconds)
POLL_MIN = 0.002
POLL_MAX = 0.02


def backoff(poll: float) -> float:
    """Sleep ``poll`` seconds (other greenlets run meanwhile); the next, longer, sleep."""
    gevent.sleep(poll)
    return min(poll * 2, POLL_MAX)


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
        poll = POLL_MIN
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
                raise LockTimeout(timeout_message(timeout), timeout=timeout)
            poll = backoff(poll)

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
# KEYS: the lock, the key written; ARGV: token, operation ('' | 'set' | 'del'), value, expiry seconds ('' for none)
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
_SCRIPTS: tuple[LuaScript, LuaScript] | None = None  # (renew, release), made on first use
#: how often a waiter looks whether the Redis lock's holder is a dead process of this host (seconds)
DEAD_HOLDER_CHECK = 0.05


def _this_host() -> str | None:
    """Who can judge a holder's pid: this kernel's boot and pid namespace (``None`` where unknown)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return hashlib.sha256(f"{boot}:{namespace}".encode()).hexdigest()[:16]


_HOST = _this_host()


def _dead(pid: int) -> bool:
    """Whether no process has ``pid`` here (a zombie, not yet reaped, still counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: alive
        return False
    return False


class RedisLock:
    """A Redis lock with a short TTL, renewed while held (every third of the TTL).

    ``acquire(timeout, read=KEY)`` also reads ``KEY`` in the same write that
    takes the lock (``SET NX PX`` and ``GET``, pipelined) and returns its value;
    ``release(write=(operation, KEY, value, expiry))`` sets (``"set"``) or
    deletes (``"del"``) ``KEY`` in the script that releases the lock, only if
    the lock is still ours: a holder that lost it (a pause longer than the TTL)
    writes nothing and gets :class:`~wsgisession.errors.LockTimeout`.
    """

    def __init__(self, client: redis.Redis[bytes] | LazyCluster, name: str, *, ttl: float) -> None:
        from .redis_commands import LuaScript, commands_for  # redis is an optional extra

        global _SCRIPTS
        if _SCRIPTS is None:
            _SCRIPTS = (LuaScript(_RENEW), LuaScript(_RELEASE))
        self._commands = commands_for(client)
        self._renew_script, self._release_script = _SCRIPTS
        self._name = name
        self._ttl = ttl
        # host.pid.random: a waiter on the same host and pid namespace can tell that a holder died
        self._token = f"{_HOST or '-'}.{os.getpid()}.{os.urandom(12).hex()}"
        self._timer: Any = None

    def acquire(self, timeout: float, *, read: str | None = None) -> Any:
        """Take the lock (waiting at most ``timeout``); the value of ``read`` if given."""
        deadline = time.monotonic() + timeout
        poll = POLL_MIN
        ttl_ms = str(max(1, int(self._ttl * 1000)))
        take = ("SET", self._name, self._token, "NX", "PX", ttl_ms)
        next_check = 0.0
        while True:
            if read is None:
                taken, value = self._commands.execute(*take), None
            else:
                taken, value = self._commands.execute_many(take, ("GET", read))
            if taken is not None:
                break
            now = time.monotonic()
            if now >= deadline:
                raise LockTimeout(timeout_message(timeout), timeout=timeout)
            if _HOST is not None and now >= next_check:
                next_check = now + DEAD_HOLDER_CHECK
                if self._free_if_dead():
                    continue
            poll = backoff(poll)
        self._timer = gevent.get_hub().loop.timer(self._ttl / 3, self._ttl / 3)
        self._timer.start(lambda: gevent.spawn(self._renew))
        return value

    def _free_if_dead(self) -> bool:
        """Free the lock if its holder is a process of this host that no longer exists (a SIGKILLed worker).

        Its staged writes died with it (a holder writes only in the script that
        releases the lock), so freeing it now loses nothing that its TTL would
        have kept; a holder on another host is left to its TTL.
        """
        holder = self._commands.execute("GET", self._name)
        if holder is None:
            return True  # freed meanwhile: try again at once
        host, _, rest = (holder.decode() if isinstance(holder, bytes) else str(holder)).partition(".")
        pid = rest.partition(".")[0]
        if host != _HOST or not pid.isdigit() or int(pid) == os.getpid() or not _dead(int(pid)):
            return False
        freed = self._commands.run_script(self._release_script, [self._name, self._name], [holder, "", "", ""])
        if freed:
            log.warning("freed a session lock left by process %s of this host, which died holding it", pid)
        return bool(freed)

    def _renew(self) -> None:
        if self._timer is None:
            return  # released meanwhile
        try:
            renewed = self._commands.run_script(self._renew_script, [self._name],
                                                [self._token, str(int(self._ttl * 1000))])
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

    def release(self, *, write: tuple[str, str, str, str] | None = None) -> None:
        """Free the lock; with ``write`` (operation, key, value, expiry seconds or ""), apply it first if still ours."""
        self._stop_timer()
        operation, key, value, expiry = write or ("", self._name, "", "")
        try:
            released = self._commands.run_script(
                self._release_script, [self._name, key], [self._token, operation, value, expiry]
            )
        except Exception as exc:
            if operation:
                raise  # the write did not happen: the caller must know
            log.warning("could not release a session lock (it expires within %.3gs): %s", self._ttl, exc)
            return
        if not released:
            log.warning("a session lock expired before it was released")
            if operation:
                raise LockTimeout("the session lock expired before the save; nothing was written", timeout=self._ttl)
