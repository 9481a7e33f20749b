"""SPEC rule 6: session locks are greenlet-safe and cross-process.

Real gevent greenlets (no monkey-patching in this process), real files and a
real redis-server; holders in other processes are real subprocesses.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent
import gevent.event
import pytest
import redis

from wsgisession.errors import LockTimeout
from wsgisession.locks import FileLock, LockRegistry, RedisLock

HOLDER = r"""
import sys, gevent
from wsgisession.locks import FileLock, RedisLock
kind, target, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
if kind == "file":
    lock = FileLock(target)
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


@pytest.fixture
def client(redis_client: redis.Redis[bytes]) -> redis.Redis[bytes]:
    return redis_client


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


# -- LockRegistry: one gevent lock per session id ----------------------------
def test_rule6_registry_is_reentrant_per_greenlet(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    registry = LockRegistry(timeout=1.0, store_lock=lambda key: FileLock(str(path)))

    def nested() -> bool:
        with registry.hold("a"):
            with registry.hold("a"):
                with registry.hold("a", timeout=0.0):
                    assert file_locked(path)
            assert file_locked(path), "an inner exit must not release the store lock"
            return len(registry) == 1

    assert gevent.spawn(nested).get(timeout=5)
    assert not path.exists()
    assert len(registry) == 0


def test_rule6_registry_excludes_other_greenlets() -> None:
    registry = LockRegistry(timeout=5.0)
    inside: list[int] = []
    overlaps: list[int] = []

    def critical(n: int) -> None:
        with registry.hold("a"):
            if inside:
                overlaps.append(n)
            inside.append(n)
            gevent.sleep(0.002)
            inside.remove(n)

    gevent.joinall([gevent.spawn(critical, n) for n in range(50)], raise_error=True)
    assert overlaps == []
    assert len(registry) == 0


def test_rule6_registry_does_not_serialize_different_ids() -> None:
    registry = LockRegistry(timeout=5.0)

    def hold(key: str) -> None:
        with registry.hold(key):
            gevent.sleep(0.2)

    started = time.monotonic()
    gevent.joinall([gevent.spawn(hold, f"k{n}") for n in range(10)], raise_error=True)
    assert time.monotonic() - started < 1.0


def test_rule6_registry_frees_entries_when_idle(tmp_path: Path) -> None:
    registry = LockRegistry(timeout=0.05, store_lock=lambda key: FileLock(str(tmp_path / f"{key}.lock")))

    def use(n: int) -> None:
        try:
            with registry.hold(f"k{n % 7}"):
                gevent.sleep(0.001 * (n % 3))
                if n % 5 == 0:
                    raise KeyError(n)
        except (KeyError, LockTimeout):
            pass

    gevent.joinall([gevent.spawn(use, n) for n in range(200)], raise_error=True)
    assert len(registry) == 0
    assert list(tmp_path.iterdir()) == []


def test_rule6_registry_wait_is_bounded_by_lock_timeout() -> None:
    registry = LockRegistry(timeout=0.2)
    holding = gevent.event.Event()
    done = gevent.event.Event()

    def holder() -> None:
        with registry.hold("a"):
            holding.set()
            done.wait(5)

    greenlet = gevent.spawn(holder)
    holding.wait(5)
    started = time.monotonic()
    with pytest.raises(LockTimeout) as caught:
        with registry.hold("a"):
            pass  # pragma: no cover
    waited = time.monotonic() - started
    assert caught.value.timeout == 0.2
    assert 0.19 <= waited < 0.5
    with pytest.raises(LockTimeout) as caught:
        with registry.hold("a", timeout=0.05):
            pass  # pragma: no cover
    assert caught.value.timeout == 0.05
    done.set()
    greenlet.get(timeout=5)
    assert len(registry) == 0


def test_rule6_registry_times_out_on_a_store_lock_held_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    registry = LockRegistry(timeout=0.3, store_lock=lambda key: FileLock(str(path)))
    holder = Holder("file", str(path), 30)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            with registry.hold("a"):
                pass  # pragma: no cover
        assert caught.value.timeout == 0.3
        assert 0.29 <= time.monotonic() - started < 0.6
        assert len(registry) == 0
    finally:
        holder.close()


# -- FileLock: polled, never a blocking flock ----------------------------------
def test_rule6_file_lock_never_blocks_the_event_loop(tmp_path: Path) -> None:
    path = str(tmp_path / "s.lock")
    holder = Holder("file", path, 0.6)
    try:
        lock = FileLock(path)
        started = time.monotonic()
        waiter = gevent.spawn(lock.acquire, 5.0)
        stall = ticker_stall(waiter)
        waiter.get()
        waited = time.monotonic() - started
        lock.release()
    finally:
        holder.close()
    print(f"file lock: waited {waited:.3f}s for the other process; longest loop stall {stall * 1000:.1f} ms")
    assert waited >= 0.4, "the lock was not actually held by the other process"
    assert stall < 0.050


def test_rule6_file_lock_leaves_no_file_after_release(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    lock = FileLock(str(path))
    for _ in range(3):
        lock.acquire(1.0)
        assert file_locked(path)
        lock.release()
        assert not path.exists()
    lock.release()  # releasing twice is harmless


def test_file_lock_makes_its_directory_only_when_it_is_missing(tmp_path: Path) -> None:
    made: list[Path] = []
    directory = tmp_path / "aa"

    def make_directory() -> None:
        made.append(directory)
        directory.mkdir(mode=0o700)

    lock = FileLock(str(directory / "s.lock"), make_directory=make_directory)
    for _ in range(3):
        lock.acquire(1.0)
        lock.release()
    assert made == [directory], "made once, on the first lock"
    with pytest.raises(FileNotFoundError):
        FileLock(str(tmp_path / "missing" / "s.lock")).acquire(1.0)


def test_rule6_file_lock_of_a_killed_holder_is_free_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    holder = Holder("file", str(path), 60)
    try:
        with pytest.raises(LockTimeout):
            FileLock(str(path)).acquire(0.1)
        killed = holder.kill()
        lock = FileLock(str(path))
        lock.acquire(5.0)
        freed = time.monotonic() - killed
        lock.release()
    finally:
        holder.close()
    print(f"file lock: free {freed * 1000:.1f} ms after its holder was killed")
    assert freed < 0.5
    assert not path.exists()


def test_rule6_file_lock_excludes_other_processes(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    counter.write_text("0")
    script = r"""
import sys
from wsgisession.locks import FileLock
lock, counter = FileLock(sys.argv[1]), sys.argv[2]
for _ in range(150):
    lock.acquire(10)
    with open(counter) as fh:
        n = int(fh.read())
    with open(counter, "w") as fh:
        fh.write(str(n + 1))
    lock.release()
"""
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "s.lock"), str(counter)]) for _ in range(3)
    ]
    assert [p.wait(30) for p in processes] == [0, 0, 0]
    assert counter.read_text() == "450"
    assert not (tmp_path / "s.lock").exists()


# -- RedisLock: short TTL, renewed while held -----------------------------------
@pytest.mark.redis
def test_rule6_redis_lock_excludes_and_releases(client: redis.Redis[bytes]) -> None:
    first = RedisLock(client, "lock:a", ttl=1.0)
    second = RedisLock(client, "lock:a", ttl=1.0)
    first.acquire(1.0)
    started = time.monotonic()
    with pytest.raises(LockTimeout) as caught:
        second.acquire(0.2)
    assert caught.value.timeout == 0.2
    assert 0.19 <= time.monotonic() - started < 0.5
    first.release()
    second.acquire(0.1)
    second.release()
    assert client.exists("lock:a") == 0


@pytest.mark.redis
def test_rule6_redis_lock_is_renewed_while_held_longer_than_its_ttl(
    client: redis.Redis[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    lock = RedisLock(client, "lock:a", ttl=0.3)
    lock.acquire(1.0)
    deadline = time.monotonic() + 1.2  # four TTLs
    while time.monotonic() < deadline:
        gevent.sleep(0.05)
        assert client.pttl("lock:a") > 0
        with pytest.raises(LockTimeout):
            RedisLock(client, "lock:a", ttl=0.3).acquire(0.0)
    lock.release()
    assert client.exists("lock:a") == 0
    gevent.sleep(0.4)  # a renewer left running would now log a failed renewal
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


@pytest.mark.redis
def test_rule6_redis_lock_lost_while_held_is_not_stolen_back(
    client: redis.Redis[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    first = RedisLock(client, "lock:a", ttl=0.3)
    first.acquire(1.0)
    client.delete("lock:a")  # as if it had expired during a long pause of its holder
    second = RedisLock(client, "lock:a", ttl=5.0)
    second.acquire(0.1)
    gevent.sleep(0.25)  # the first holder's renewer notices and stops
    first.release()  # must not delete the second holder's lock
    assert client.exists("lock:a") == 1 and client.pttl("lock:a") > 4000
    second.release()
    messages = [r.getMessage() for r in caplog.records if r.name == "wsgisession.locks"]
    assert messages == [
        "a session lock expired while held; stopped renewing it",
        "a session lock expired before it was released",
    ]


@pytest.mark.redis
def test_rule6_redis_lock_of_a_killed_holder_is_free_within_its_ttl(client: redis.Redis[bytes], redis_url: str) -> None:
    ttl = 1.0
    holder = Holder("redis", f"{redis_url} lock:a {ttl}", 60)
    try:
        gevent.sleep(1.5)  # longer than the TTL: the holder renews it
        with pytest.raises(LockTimeout):
            RedisLock(client, "lock:a", ttl=ttl).acquire(0.1)
        killed = holder.kill()
        lock = RedisLock(client, "lock:a", ttl=ttl)
        lock.acquire(ttl + 5)
        freed = time.monotonic() - killed
        lock.release()
    finally:
        holder.close()
    print(f"redis lock (ttl {ttl}s): free {freed:.2f}s after its holder was killed")
    assert freed <= ttl + 1.0


@pytest.mark.redis
def test_rule6_redis_lock_excludes_other_processes(client: redis.Redis[bytes], redis_url: str) -> None:
    client.set("n", "0")
    script = r"""
import sys, redis
from wsgisession.locks import RedisLock
client = redis.Redis.from_url(sys.argv[1])
lock = RedisLock(client, "lock:a", ttl=2.0)
for _ in range(150):
    lock.acquire(10)
    n = int(client.get("n"))
    client.set("n", str(n + 1))
    lock.release()
"""
    processes = [subprocess.Popen([sys.executable, "-c", script, redis_url]) for _ in range(3)]
    assert [p.wait(30) for p in processes] == [0, 0, 0]
    assert client.get("n") == b"450"
    assert client.exists("lock:a") == 0


@pytest.mark.redis
def test_rule6_redis_lock_wait_does_not_block_the_event_loop(client: redis.Redis[bytes], redis_url: str) -> None:
    holder = Holder("redis", f"{redis_url} lock:a 1.0", 0.6)
    try:
        lock = RedisLock(client, "lock:a", ttl=1.0)
        waiter = gevent.spawn(lock.acquire, 5.0)
        stall = ticker_stall(waiter)
        waiter.get()
        lock.release()
    finally:
        holder.close()
    print(f"redis lock: longest loop stall while waiting {stall * 1000:.1f} ms")
    assert stall < 0.050
