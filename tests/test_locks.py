"""SPEC rule 6: session locks are greenlet-safe (the registry of per-id gevent locks).

Real gevent greenlets (no monkey-patching in this process), real files; holders
in other processes are real subprocesses.
"""
from __future__ import annotations

import time
from pathlib import Path

import gevent
import gevent.event
import pytest

from tests.holders import Holder, file_locked
from wsgisession.errors import LockTimeout
from wsgisession.locks import KEPT_ENTRIES, LockRegistry
from wsgisession.store_locks import FileLock


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


def test_rule6_registry_waiter_gets_the_lock_only_after_the_outermost_exit() -> None:
    registry = LockRegistry(timeout=5.0)
    events: list[str] = []

    def holder() -> None:
        with registry.hold("a"):
            with registry.hold("a"):
                gevent.sleep(0.05)
            events.append("inner exit")
            gevent.sleep(0.05)  # the waiter must still be waiting
            events.append("outer exit")

    def waiter() -> None:
        with registry.hold("a"):
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
    with registry.hold("a", timeout=0.0):  # free, and reusable at once
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
        with registry.hold("a"):
            events.append("holder in")
            release.wait(5)
            events.append("holder out")

    def impatient() -> None:
        with pytest.raises(LockTimeout):
            with registry.hold("a", timeout=0.02):
                events.append("impatient in")  # pragma: no cover
        events.append("impatient gave up")

    def waiter(name: str) -> None:
        with registry.hold("a"):
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
            with registry.hold("a", timeout=0.0):
                return False
        except LockTimeout:
            return True

    for _ in range(3):  # free again, and still exclusive: the semaphore's count is whole
        with registry.hold("a", timeout=0.0):
            assert gevent.spawn(refused).get(timeout=5)
        assert not refused()


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


def test_rule6_registry_keeps_a_bounded_number_of_idle_entries() -> None:
    registry = LockRegistry(timeout=1.0)
    with registry.hold("held"):
        for n in range(3 * KEPT_ENTRIES):
            with registry.hold(f"k{n}"):
                pass
        assert registry.kept() <= KEPT_ENTRIES
        assert len(registry) == 1
        assert registry.held("held") is None  # held, but there is no store lock
    assert len(registry) == 0
    with registry.hold("held", timeout=0.0):  # the idle entry is taken again at once
        pass


def test_rule6_registry_with_most_entries_in_use_still_grows_and_sweeps_again() -> None:
    registry = LockRegistry(timeout=1.0)
    holders = [registry.hold(f"h{n}") for n in range(KEPT_ENTRIES + 10)]
    for hold in holders:  # more ids held at once than are kept idle: none is dropped
        hold.__enter__()
    assert len(registry) == KEPT_ENTRIES + 10
    for hold in holders:
        hold.__exit__(None, None, None)
    assert len(registry) == 0
    for n in range(4 * KEPT_ENTRIES):
        with registry.hold(f"k{n}"):
            pass
    assert registry.kept() <= 2 * KEPT_ENTRIES + 20  # the idle ones were dropped again


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
