"""SPEC rule 6: the store locks are cross-process (a polled file lock, a Redis lock with a TTL).

Real files and a real redis-server; holders in other processes are real subprocesses.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest
import redis

from tests.holders import Holder, file_locked, ticker_stall
from wsgisession.errors import LockTimeout
from wsgisession.store_locks import FileLock, RedisLock


@pytest.fixture
def client(redis_client: redis.Redis[bytes]) -> redis.Redis[bytes]:
    return redis_client


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
from wsgisession.store_locks import FileLock
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
    messages = [r.getMessage() for r in caplog.records if r.name == "wsgisession.store_locks"]
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
from wsgisession.store_locks import RedisLock
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
