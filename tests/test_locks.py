"""Rule 6: session locks are greenlet-safe (the registry of per-id gevent locks) and cross-process (FileLock, RedisLock).

Real gevent greenlets (no monkey-patching in this process), real files; holders
in other processes are real subprocesses.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import gevent
import gevent.event
import pytest
import redis

from tests.holders import Holder, file_locked, ticker_stall
from wsgisession.errors import LockTimeout
from wsgisession.locks import KEPT_ENTRIES, FileLock, LockRegistry, RedisLock


@contextlib.contextmanager
def hold(registry: LockRegistry, key: str, timeout: float | None = None) -> Iterator[None]:
    entry = registry.acquire(key, timeout)
    try:
        yield
    finally:
        registry.release(entry)


# -- LockRegistry: one gevent lock per session id ----------------------------
def test_rule6_registry_waiter_gets_the_lock_only_after_the_outermost_exit() -> None:
    registry = LockRegistry(timeout=5.0)
    events: list[str] = []

    def holder() -> None:
        with hold(registry, "a"):
            with hold(registry, "a"):
                gevent.sleep(0.05)
            events.append("inner exit")
            gevent.sleep(0.05)  # the waiter must still be waiting
            events.append("outer exit")

    def waiter() -> None:
        with hold(registry, "a"):
            events.append("waiter in")

    first = gevent.spawn(holder)
    gevent.sleep(0.01)
    killed = gevent.spawn(waiter)  # killed while it waits: leaves nothing behind
    second = gevent.spawn(waiter)
    gevent.sleep(0.01)
    killed.kill()
    gevent.joinall([first, second], raise_error=True)
    assert events == ["inner exit", "outer exit", "waiter in"]
    assert len(registry) == 0
    with hold(registry, "a", timeout=0.0):  # free, and reusable at once
        pass


def test_rule6_registry_uncontended_lock_hands_over_through_its_semaphore() -> None:
    """A lock taken with nobody waiting skips the semaphore; waiters that come later still exclude.

    The first waiter gives up (timeout) after taking the semaphore for the
    holder; the next waiter must still wait for the holder's exit, and the
    lock must be free (and bare again) after everybody left.
    """
    registry = LockRegistry(timeout=5.0)
    events: list[str] = []
    release = gevent.event.Event()

    def holder() -> None:
        with hold(registry, "a"):
            events.append("holder in")
            release.wait(5)
            events.append("holder out")

    def impatient() -> None:
        with pytest.raises(LockTimeout):
            with hold(registry, "a", timeout=0.02):
                events.append("impatient in")  # pragma: no cover
        events.append("impatient gave up")

    def waiter(name: str) -> None:
        with hold(registry, "a"):
            events.append(f"{name} in")
            gevent.sleep(0.01)
            events.append(f"{name} out")

    first = gevent.spawn(holder)
    gevent.sleep(0)
    gevent.spawn(impatient).get(timeout=5)
    second, third = gevent.spawn(waiter, "second"), gevent.spawn(waiter, "third")
    gevent.sleep(0.02)
    assert events == ["holder in", "impatient gave up"]
    release.set()
    gevent.joinall([first, second, third], raise_error=True)
    assert events == ["holder in", "impatient gave up", "holder out", "second in", "second out", "third in", "third out"]
    assert len(registry) == 0

    def refused() -> bool:
        try:
            with hold(registry, "a", timeout=0.0):
                return False
        except LockTimeout:
            return True

    for _ in range(3):  # free again, and still exclusive: the semaphore's count is whole
        with hold(registry, "a", timeout=0.0):
            assert gevent.spawn(refused).get(timeout=5)
        assert not refused()


def test_rule6_registry_excludes_other_greenlets() -> None:
    registry = LockRegistry(timeout=5.0)
    inside: list[int] = []
    overlaps: list[int] = []

    def critical(n: int) -> None:
        with hold(registry, "a"):
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

    def use(key: str) -> None:
        with hold(registry, key):
            gevent.sleep(0.2)

    started = time.monotonic()
    gevent.joinall([gevent.spawn(use, f"k{n}") for n in range(10)], raise_error=True)
    assert time.monotonic() - started < 1.0


def test_rule6_registry_keeps_a_bounded_number_of_idle_entries() -> None:
    registry = LockRegistry(timeout=1.0)
    with hold(registry, "held"):
        for n in range(3 * KEPT_ENTRIES):
            with hold(registry, f"k{n}"):
                pass
        assert registry.kept() <= KEPT_ENTRIES
        assert len(registry) == 1
    assert len(registry) == 0
    with hold(registry, "held", timeout=0.0):  # the idle entry is taken again at once
        pass


def test_rule6_registry_with_most_entries_in_use_still_grows_and_sweeps_again() -> None:
    registry = LockRegistry(timeout=1.0)
    entries = [registry.acquire(f"h{n}") for n in range(KEPT_ENTRIES + 10)]  # more ids held than kept idle
    assert len(registry) == KEPT_ENTRIES + 10  # none is dropped
    for entry in entries:
        registry.release(entry)
    assert len(registry) == 0
    for n in range(4 * KEPT_ENTRIES):
        with hold(registry, f"k{n}"):
            pass
    assert registry.kept() <= 2 * KEPT_ENTRIES + 20  # the idle ones were dropped again


def test_rule6_registry_wait_is_bounded_by_lock_timeout() -> None:
    registry = LockRegistry(timeout=0.2)
    holding = gevent.event.Event()
    done = gevent.event.Event()

    def holder() -> None:
        with hold(registry, "a"):
            holding.set()
            done.wait(5)

    greenlet = gevent.spawn(holder)
    holding.wait(5)
    started = time.monotonic()
    with pytest.raises(LockTimeout) as caught:
        with hold(registry, "a"):
            pass  # pragma: no cover
    waited = time.monotonic() - started
    assert caught.value.timeout == 0.2
    assert 0.19 <= waited < 0.5
    with pytest.raises(LockTimeout) as caught:
        with hold(registry, "a", timeout=0.05):
            pass  # pragma: no cover
    assert caught.value.timeout == 0.05
    done.set()
    greenlet.get(timeout=5)
    assert len(registry) == 0


# -- the locks that serialize processes: FileLock and RedisLock -------------------------
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
def test_rule6_redis_lock_excludes_and_releases(redis_client: redis.Redis[bytes]) -> None:
    first = RedisLock(redis_client, "lock:a", ttl=1.0)
    second = RedisLock(redis_client, "lock:a", ttl=1.0)
    first.acquire(1.0)
    started = time.monotonic()
    with pytest.raises(LockTimeout) as caught:
        second.acquire(0.2)
    assert caught.value.timeout == 0.2
    assert 0.19 <= time.monotonic() - started < 0.5
    first.release()
    second.acquire(0.1)
    second.release()
    assert redis_client.exists("lock:a") == 0


@pytest.mark.redis
def test_rule6_redis_lock_is_renewed_while_held_longer_than_its_ttl(
    redis_client: redis.Redis[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    lock = RedisLock(redis_client, "lock:a", ttl=0.3)
    lock.acquire(1.0)
    deadline = time.monotonic() + 1.2  # four TTLs
    while time.monotonic() < deadline:
        gevent.sleep(0.05)
        assert redis_client.pttl("lock:a") > 0
        with pytest.raises(LockTimeout):
            RedisLock(redis_client, "lock:a", ttl=0.3).acquire(0.0)
    lock.release()
    assert redis_client.exists("lock:a") == 0
    gevent.sleep(0.4)  # a renewer left running would now log a failed renewal
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


@pytest.mark.redis
def test_rule6_redis_lock_lost_while_held_is_not_stolen_back(
    redis_client: redis.Redis[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    first = RedisLock(redis_client, "lock:a", ttl=0.3)
    first.acquire(1.0)
    redis_client.delete("lock:a")  # as if it had expired during a long pause of its holder
    second = RedisLock(redis_client, "lock:a", ttl=5.0)
    second.acquire(0.1)
    gevent.sleep(0.25)  # the first holder's renewer notices and stops
    first.release()  # must not delete the second holder's lock
    assert redis_client.exists("lock:a") == 1 and redis_client.pttl("lock:a") > 4000
    second.release()
    messages = [r.getMessage() for r in caplog.records if r.name == "wsgisession.locks"]
    assert messages == [
        "a session lock expired while held; stopped renewing it",
        "a session lock expired before it was released",
    ]


@pytest.mark.redis
def test_rule6_redis_lock_of_a_killed_holder_of_this_host_is_freed_at_once(
    redis_client: redis.Redis[bytes], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ttl = 5.0
    holder = Holder("redis", f"{redis_url} lock:a {ttl}", 60)
    try:
        with pytest.raises(LockTimeout):  # alive: it is not taken from it
            RedisLock(redis_client, "lock:a", ttl=ttl).acquire(0.3)
        killed = holder.kill()  # SIGKILL, reaped: its pid names no process now
        lock = RedisLock(redis_client, "lock:a", ttl=ttl)
        lock.acquire(ttl + 5)
        freed = time.monotonic() - killed
        lock.release()
    finally:
        holder.close()
    print(f"redis lock (ttl {ttl}s): free {freed:.2f}s after its holder (this host) was killed")
    assert freed < 0.5
    assert any("died holding it" in r.getMessage() for r in caplog.records)


@pytest.mark.redis
def test_rule6_redis_lock_of_a_holder_elsewhere_is_free_within_its_ttl(redis_client: redis.Redis[bytes]) -> None:
    ttl_ms = 800
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait(10)
    for token in (f"another-host.{dead_pid.pid}.x", f"-.{dead_pid.pid}.x", "not-our-format"):
        redis_client.set("lock:a", token, px=ttl_ms)  # a holder this host cannot judge: left to its TTL
        started = time.monotonic()
        lock = RedisLock(redis_client, "lock:a", ttl=1.0)
        lock.acquire(5.0)
        waited = time.monotonic() - started
        lock.release()
        assert 0.6 <= waited <= 1.5, (token, waited)


@pytest.mark.redis
def test_rule6_redis_lock_excludes_other_processes(redis_client: redis.Redis[bytes], redis_url: str) -> None:
    redis_client.set("n", "0")
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
    assert redis_client.get("n") == b"450"
    assert redis_client.exists("lock:a") == 0


@pytest.mark.redis
def test_rule6_redis_lock_wait_does_not_block_the_event_loop(redis_client: redis.Redis[bytes], redis_url: str) -> None:
    holder = Holder("redis", f"{redis_url} lock:a 1.0", 0.6)
    try:
        lock = RedisLock(redis_client, "lock:a", ttl=1.0)
        waiter = gevent.spawn(lock.acquire, 5.0)
        stall = ticker_stall(waiter)
        waiter.get()
        lock.release()
    finally:
        holder.close()
    print(f"redis lock: longest loop stall while waiting {stall * 1000:.1f} ms")
    assert stall < 0.050
