"""The session store on memory, file and Redis: records, id checks, locks, faults.

Real files and a real redis-server; greenlets without monkey-patching.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

import gevent
import pytest
import redis

from tests.holders import Holder, file_locked
from tests.servers import Redis
from wsgisession.backends import memory
from wsgisession.backends.file import FileNamespaceManager
from wsgisession.backends.sqlite import TABLE, SqliteBackend
from wsgisession.errors import ConfigurationError, LockTimeout, StoreUnavailable
from wsgisession.ids import new_session_id
from wsgisession.store import Store

BACKENDS = ["memory", "sqlite", "file", pytest.param("redis", marks=pytest.mark.redis)]
SHARED = ["sqlite", "file", pytest.param("redis", marks=pytest.mark.redis)]  # usable by several processes
NOT_OURS = [
    "../x", "..x", "..", "", "x", "a/b", "../" + "a" * 40, "a" * 42 + ".", "a" * 42 + "/",
    "a" * 42 + "*", "a" * 43 + "\n", "a" * 44, "*", "wsgisession:*",
]


def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest, **options: Any) -> Store:
    if backend == "memory":
        return Store(type="memory", **options)
    if backend in ("file", "sqlite"):
        return Store(type=backend, data_dir=str(tmp_path / "sessions"), **options)
    url = request.getfixturevalue("redis_url")
    redis.Redis.from_url(url).flushdb()
    return Store(type="ext:redis", url=url, **options)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store(request.param, tmp_path, request)


def stored_anything(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    """Every path, key, row or memory namespace the store holds."""
    if store.name == "file":
        return [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()]
    if store.name == "sqlite":
        return sqlite_rows(store)
    if store.name == "redis":
        return [k.decode() for k in redis.Redis.from_url(request.getfixturevalue("redis_url")).keys("*")]
    return memory.namespaces()


def sqlite_rows(store: Store) -> list[str]:
    """Every row of a SQLite store, read by a connection of its own."""
    assert isinstance(store.backend, SqliteBackend)
    with closing(sqlite3.connect(store.backend.database.path)) as connection:
        return [f"{n}:{k}" for n, k in connection.execute(f"SELECT namespace, key FROM {TABLE}")]


# -- records ---------------------------------------------------------------
def test_store_reads_writes_and_removes(store: Store) -> None:
    sid, other = new_session_id(), new_session_id()
    assert store.read(sid) is None
    store.write(sid, '{"n": 1}')
    store.write(other, '{"n": "other"}')
    assert store.read(sid) == '{"n": 1}'
    store.write(sid, '{"n": 2, "s": "\u00e9\u20ac"}')
    assert store.read(sid) == '{"n": 2, "s": "\u00e9\u20ac"}'
    store.remove(sid)
    assert store.read(sid) is None
    store.remove(sid)  # removing twice is harmless
    assert store.read(other) == '{"n": "other"}'
    store.remove(other)


def test_store_reading_an_unknown_id_keeps_nothing(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    before = stored_anything(store, tmp_path, request)
    for _ in range(20):
        assert store.read(new_session_id()) is None
        store.remove(new_session_id())
    assert stored_anything(store, tmp_path, request) == before


@pytest.mark.redis
@pytest.mark.parametrize("backend", BACKENDS)
def test_store_reused_namespace_managers_read_what_another_store_wrote(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first = make_store(backend, tmp_path, request)
    second = make_store(backend, tmp_path, request)
    sid = new_session_id()
    assert first.read(sid) is None and second.read(sid) is None  # both now keep a manager for sid
    first.write(sid, '{"n": 1}')
    assert second.read(sid) == '{"n": 1}'
    second.remove(sid)
    assert first.read(sid) is None
    second.write(sid, '{"n": 2}')
    assert first.read(sid) == '{"n": 2}'
    first.remove(sid)


def test_store_keeps_a_bounded_number_of_namespace_managers(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsgisession.backends import base

    monkeypatch.setattr(base, "KEPT_MANAGERS", 8)
    store = Store(type="memory")
    ids = [new_session_id() for _ in range(20)]
    for sid in ids:
        store.write(sid, f'{{"id": "{sid}"}}')
    assert len(store.backend._managers) <= 8
    assert [store.read(sid) for sid in ids] == [f'{{"id": "{sid}"}}' for sid in ids]
    for sid in ids:
        store.remove(sid)


def test_store_redis_records_expire_with_their_ttl(redis_url: str) -> None:
    store = Store(type="ext:redis", url=redis_url)
    sid = new_session_id()
    store.write(sid, "{}", ttl=100)
    ttls = [redis.Redis.from_url(redis_url).ttl(k) for k in redis.Redis.from_url(redis_url).keys(f"*{sid}*")]
    assert len(ttls) == 1 and 90 < ttls[0] <= 100
    store.remove(sid)


def test_store_refuses_pickling_backends(tmp_path: Path) -> None:
    for kind in ("dbm", "ext:database", "ext:memcached", "cookie", "ext:mongodb"):
        with pytest.raises(ConfigurationError) as caught:
            Store(type=kind, data_dir=str(tmp_path))
        assert caught.value.key == "type"


# -- ids that are not ours ---------------------------------------------------
@pytest.mark.parametrize("bad", NOT_OURS)
def test_store_ids_not_ours_never_reach_a_path_or_key(
    store: Store, bad: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    before = stored_anything(store, tmp_path, request)
    with pytest.raises(ValueError):
        store.read(bad)
    with pytest.raises(ValueError):
        store.write(bad, "{}")
    with pytest.raises(ValueError):
        store.remove(bad)
    with pytest.raises(ValueError):
        with store.transaction(bad):
            pass  # pragma: no cover
    assert stored_anything(store, tmp_path, request) == before
    assert store.holding() == 0
    assert not (tmp_path / "x").exists() and not (tmp_path / "sessions" / "x").exists()


# -- rule 6 through the store: greenlets and "processes" ---------------------
@pytest.mark.parametrize("backend", SHARED)
def test_rule6_store_lock_excludes_greenlets_and_other_stores(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Two Store objects on the same data are what two processes are: separate
    # registries, so only the store lock (file or Redis) keeps them apart.
    stores = [make_store(backend, tmp_path, request), make_store(backend, tmp_path, request)]
    sid = new_session_id()
    stores[0].write(sid, "0")

    def incr(store: Store) -> None:
        with store.transaction(sid) as txn:
            n = int(txn.text or "0")
            gevent.sleep(0.001)
            txn.write(str(n + 1))

    gevent.joinall([gevent.spawn(incr, stores[n % 2]) for n in range(60)], raise_error=True)
    assert stores[1].read(sid) == "60"
    assert [s.holding() for s in stores] == [0, 0]
    if backend == "file":
        assert not [p for p in tmp_path.rglob("*.lock")]


@pytest.mark.parametrize("backend", SHARED)
def test_rule6_store_lock_timeout_is_bounded(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    first = make_store(backend, tmp_path, request, lock_timeout=5.0)
    second = make_store(backend, tmp_path, request, lock_timeout=0.25)
    sid = new_session_id()
    with first.transaction(sid):
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            with second.transaction(sid):
                pass  # pragma: no cover
        assert caught.value.timeout == 0.25
        assert 0.24 <= time.monotonic() - started < 0.6
    with second.transaction(sid):
        pass
    assert first.holding() == second.holding() == 0


def test_store_locking_off_takes_no_lock(tmp_path: Path) -> None:
    store = Store(type="file", data_dir=str(tmp_path), locking=False)
    with store.transaction(new_session_id()):
        assert store.holding() == 0
        assert not list(tmp_path.rglob("*.lock"))


# -- a store that is down ----------------------------------------------------
@pytest.mark.redis
def test_store_down_raises_store_unavailable_and_recovers(tmp_path: Path) -> None:
    server = Redis(tmp_path)  # without persistence
    server.start()
    try:
        store = Store(type="ext:redis", url=server.url, lock_timeout=2.0)
        sid = new_session_id()
        store.write(sid, "{}")
        with store.transaction(sid) as txn:
            assert txn.text == "{}"
        server.stop()
        started = time.monotonic()
        operations: list[Callable[[], object]] = [
            lambda: store.read(sid), lambda: store.write(sid, "{}"), lambda: store.remove(sid)
        ]
        for operation in operations:
            with pytest.raises(StoreUnavailable) as caught:
                operation()
            assert caught.value.backend == "redis" and caught.value.reason == "store_unavailable"
        with pytest.raises(StoreUnavailable):
            with store.transaction(sid):
                pass  # pragma: no cover
        assert store.holding() == 0
        down = time.monotonic() - started
        print(f"redis down: four operations refused in {down * 1000:.0f} ms")
        assert down < 2.0
        server.start()  # on the same port
        with store.transaction(sid) as txn:
            assert txn.text is None  # a fresh server without persistence
            txn.write('{"back": true}')
        assert store.read(sid) == '{"back": true}'
    finally:
        server.stop()


def test_store_down_at_release_raises_store_unavailable_and_frees_the_lock(tmp_path: Path) -> None:
    """A save staged under the Redis lock is sent at release: the store down then is StoreUnavailable."""
    server = Redis(tmp_path)  # without persistence
    server.start()
    try:
        store = Store(type="ext:redis", url=server.url, lock_timeout=2.0)
        sid = new_session_id()
        with pytest.raises(StoreUnavailable) as caught:
            with store.transaction(sid) as txn:
                txn.write('{"n": 1}')  # staged: written when the lock is released
                server.stop()
        assert caught.value.backend == "redis"
        assert store.holding() == 0  # the in-process lock is free again
        server.start()  # on the same port
        txn = store.begin(sid, 1.0)
        assert txn.text is None  # nothing half-written
        store.finish(txn)
    finally:
        server.stop()


def test_store_file_root_is_private(tmp_path: Path) -> None:
    store = Store(type="file", data_dir=str(tmp_path / "sessions"))
    sid = new_session_id()
    store.write(sid, "{}")
    modes = {oct(os.stat(p).st_mode & 0o777) for p in (tmp_path / "sessions").rglob("*")}
    assert modes <= {"0o700", "0o600"}


# -- Redis: the transaction's read and write ride on the lock's round trips ---------
def redis_calls(url: str) -> dict[str, int]:
    """Calls per command; commands run inside a script count too."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


@pytest.mark.redis
def test_redis_atomic_update_takes_two_round_trips(redis_url: str) -> None:
    store = Store(type="ext:redis", url=redis_url)
    sid = new_session_id()
    store.write(sid, '{"n": 0}')
    with store.transaction(sid):  # loads the scripts once
        pass
    before = redis_calls(redis_url)
    with store.transaction(sid) as txn:
        assert txn.text == '{"n": 0}'  # read when the lock was taken
        txn.write('{"n": 1}')
        assert txn.text == '{"n": 1}'  # the staged write is what this holder sees
    after = redis_calls(redis_url)
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0) and k not in ("hello", "info")}
    # two round trips: SET NX + GET (pipelined in one write), and EVALSHA (GET token + SET + DEL)
    assert delta == {"evalsha": 1, "set": 2, "get": 2, "del": 1}
    assert store.read(sid) == '{"n": 1}'
    with store.transaction(sid) as txn:
        txn.remove()
        assert txn.text is None
    assert store.read(sid) is None


@pytest.mark.redis
def test_redis_save_after_the_lock_expired_writes_nothing(redis_url: str) -> None:
    store = Store(type="ext:redis", url=redis_url, lock_ttl=0.2)
    sid = new_session_id()
    store.write(sid, "old")
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(LockTimeout, match="expired before the save"):
        with store.transaction(sid) as txn:
            client.delete(f"wsgisession:{{{sid}}}:lock")  # as if a pause outlived the TTL
            client.set(f"wsgisession:{{{sid}}}:lock", "someone else")
            txn.write("stale")
    assert store.read(sid) == "old"


# -- the store: the in-process lock, then the backend's cross-process lock ------------
def file_lock_path(store: Store, sid: str) -> Path:
    manager = store.backend.manager(sid)
    assert isinstance(manager, FileNamespaceManager)
    return Path(manager.lock_path(create_directories=False))


def test_rule6_transactions_are_reentrant_and_the_outermost_holds_the_store_lock(tmp_path: Path) -> None:
    store = Store(type="file", data_dir=str(tmp_path), lock_timeout=1.0)
    sid = new_session_id()
    path = file_lock_path(store, sid)

    def nested() -> bool:
        with store.transaction(sid) as outer:
            with store.transaction(sid) as inner:
                with store.transaction(sid, timeout=0.0) as innermost:
                    assert file_locked(path)
                    assert outer is inner is innermost  # one transaction per holder
            assert file_locked(path), "an inner exit must not release the store lock"
            return store.holding() == 1

    assert gevent.spawn(nested).get(timeout=5)
    assert not path.exists()
    assert store.holding() == 0


def test_rule6_transactions_free_their_locks_when_idle(tmp_path: Path) -> None:
    store = Store(type="file", data_dir=str(tmp_path), lock_timeout=0.05)
    ids = [new_session_id() for _ in range(7)]

    def use(n: int) -> None:
        try:
            with store.transaction(ids[n % 7]):
                gevent.sleep(0.001 * (n % 3))
                if n % 5 == 0:
                    raise KeyError(n)
        except (KeyError, LockTimeout):
            pass

    gevent.joinall([gevent.spawn(use, n) for n in range(200)], raise_error=True)
    assert store.holding() == 0
    assert not list(tmp_path.rglob("*.lock"))


def test_rule6_a_transaction_times_out_on_a_store_lock_held_elsewhere(tmp_path: Path) -> None:
    store = Store(type="file", data_dir=str(tmp_path), lock_timeout=0.3)
    sid = new_session_id()
    path = file_lock_path(store, sid)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = Holder("file", str(path), 30)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            with store.transaction(sid):
                pass  # pragma: no cover
        assert caught.value.timeout == 0.3  # the whole wait, not what was left of it
        assert 0.29 <= time.monotonic() - started < 0.6
        assert store.holding() == 0
    finally:
        holder.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_rule6_a_nested_transaction_never_deadlocks_with_an_outer_one_on_its_key(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Session first, then another key (a user's index) inside it; meanwhile another greenlet takes that key alone.

    On SQLite, whose lock covers every key, that lock is every key's: were a key's own
    lock taken before it, the lone holder of the index would wait for the database
    while the session's holder waits for the index (until the timeout).
    """
    store = make_store(backend, tmp_path, request, lock_timeout=2.0)
    session, index = new_session_id(), new_session_id()
    order: list[str] = []

    def save_with_index() -> None:
        with store.transaction(session) as txn:
            gevent.sleep(0.05)  # the other greenlet comes to take the index meanwhile
            with store.transaction(index) as inner:
                inner.write(str(int(inner.text or "0") + 1))
            txn.write("saved")
        order.append("session")

    def prune_index() -> None:
        with store.transaction(index) as txn:
            txn.write(str(int(txn.text or "0") + 10))
        order.append("index")

    first = gevent.spawn(save_with_index)
    gevent.sleep(0.01)
    second = gevent.spawn(prune_index)
    started = time.monotonic()
    gevent.joinall([first, second], raise_error=True)
    assert time.monotonic() - started < 1.0
    assert sorted(order) == ["index", "session"]
    assert store.read(index) == "11" and store.read(session) == "saved"
    assert store.holding() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_rule6_nested_transactions_of_one_key_are_one_and_the_outermost_commits(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One greenlet's nested transactions of a key are one; another greenlet waits for the outermost's end.

    On SQLite no key lock is taken (its lock covers every key): the store counts the holdings itself.
    """
    store = make_store(backend, tmp_path, request, lock_timeout=2.0)
    sid = new_session_id()
    seen: list[str | None] = []

    def other() -> None:
        with store.transaction(sid) as txn:
            seen.append(txn.text)
            txn.write("other")

    def nested() -> gevent.Greenlet:
        with store.transaction(sid) as outer:
            waiter = gevent.spawn(other)
            with store.transaction(sid) as inner:
                assert inner is outer  # one transaction per holder
                inner.write("inner")
                gevent.sleep(0.05)  # the other greenlet comes to wait meanwhile
            assert store.read(sid) is None  # an inner end commits nothing
            gevent.sleep(0.05)
            assert not seen, "an inner end must not free the lock"
            assert store.holding() == 1
        return waiter

    waiter = gevent.spawn(nested).get(timeout=5)
    waiter.get(timeout=5)
    assert seen == ["inner"]  # the waiter read what the outermost committed
    assert store.read(sid) == "other"
    assert store.holding() == 0
