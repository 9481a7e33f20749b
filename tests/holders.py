"""Lock holders in other processes, and what the lock tests watch (shared by test_locks and test_store_locks)."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent

HOLDER = r"""
import sys, gevent
from wsgisession.locks import FileLock, RedisLock
kind, target, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
if kind == "file":
    lock = FileLock(target)
elif kind == "sqlite":  # the database's write lock, as a transaction of another process takes it
    import sqlite3
    connection = sqlite3.connect(target, timeout=0, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    gevent.sleep(hold)
    connection.execute("COMMIT")
    print("released", flush=True)
    sys.exit(0)
else:
    import redis
    url, name, ttl = target.split(" ")
    lock = RedisLock(redis.Redis.from_url(url), name, ttl=float(ttl))
lock.acquire(10)
print("locked", flush=True)
gevent.sleep(hold)  # a Redis holder keeps renewing meanwhile
lock.release()
print("released", flush=True)
"""


class Holder:
    """A lock held by another process until it ends (or is killed)."""

    def __init__(self, kind: str, target: str, hold: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, target, str(hold)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"

    def kill(self) -> float:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        return time.monotonic()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def file_locked(path: Path) -> bool:
    """Whether some other open file description holds an flock on ``path``."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def ticker_stall(until: gevent.Greenlet[[float], None]) -> float:
    """The longest gap (s) between wake-ups of a greenlet sleeping 5 ms, until ``until`` ends."""
    longest = 0.0
    last = time.monotonic()
    while not until.dead:
        gevent.sleep(0.005)
        now = time.monotonic()
        longest = max(longest, now - last - 0.005)
        last = now
    return longest
