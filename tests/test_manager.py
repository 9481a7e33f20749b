"""SessionManager: records by id, expiry, rotation and endings, told to listeners only once committed."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

import pytest

from tests.helpers import SECRET, Clock, saved_session
from tests.servers import Redis
from wsgisession.errors import SessionExpired, StoreUnavailable, UnknownSession
from wsgisession.ids import Fingerprint, new_session_id
from wsgisession.manager import EXPIRED_KEPT, SessionManager
from wsgisession.records import Record
from wsgisession.session import SharedSession
from wsgisession.store import Store


class Heard:
    """A listener that records what it was told, and what the store held at that moment."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.events: list[tuple[str, ...]] = []
        manager.listeners.append(self)

    def session_ended(self, session_id: str, reason: str) -> None:
        held = self.manager.store.read(session_id)
        self.events.append(("ended", session_id, reason, "stored" if held is not None else "gone"))

    def session_rotated(self, old_id: str, new_id: str) -> None:
        held = self.manager.store.read(old_id)
        self.events.append(("rotated", old_id, new_id, "stored" if held is not None else "gone"))


def test_rule7_a_deletion_is_told_once_committed(manager: SessionManager) -> None:
    heard = Heard(manager)
    session = saved_session(manager, a=1)
    session.delete()
    assert heard.events == [("ended", session.id, "logout", "gone")]


def test_rule7_a_deletion_inside_atomic_is_told_when_the_block_commits(manager: SessionManager) -> None:
    heard = Heard(manager)
    session = saved_session(manager, a=1)
    with SharedSession.open(manager, session.id).atomic() as mine:
        mine.delete()
        assert heard.events == []  # not committed yet: the outermost holder commits
    assert heard.events == [("ended", session.id, "logout", "gone")]


@pytest.mark.redis
def test_rule7_a_deletion_whose_commit_fails_is_not_told(tmp_path: Path) -> None:
    redis = Redis(tmp_path)
    redis.start()
    try:
        manager = SessionManager(store=Store(type="ext:redis", url=redis.url), fingerprint=Fingerprint(secret=SECRET))
        heard = Heard(manager)
        session = saved_session(manager, a=1)
        txn = manager.store.begin(session.id)
        manager.delete(session.id, reason="logout")  # staged in the held transaction
        redis.stop()
        with pytest.raises(StoreUnavailable):
            manager.store.finish(txn)  # the commit fails: the sockets must not be ended
        assert heard.events == []
        assert manager.store.holding() == 0
    finally:
        redis.stop()


def test_rule8_a_rotation_moves_the_record_and_is_told_once_committed(manager: SessionManager) -> None:
    heard = Heard(manager)
    session = saved_session(manager, a=1)
    old_id, new_id = session.id, new_session_id()
    record, text, _ = manager.rotate(old_id, new_id, created=session.created, sets={"b": 2}, dels=["a"])
    assert record.data == {"b": 2} and manager.store.read(new_id) == text
    assert heard.events == [("rotated", old_id, new_id, "gone")]
    assert manager.read(old_id) is None
    assert manager.records.cache.get(old_id, text) is None


def test_rule9_loading_an_expired_record_removes_it_and_tells(make_manager: Callable[..., SessionManager],
                                                              clock: Clock) -> None:
    manager = make_manager("memory", timeout=10)
    heard = Heard(manager)
    session = saved_session(manager, a=1)
    clock.advance(11)
    with pytest.raises(SessionExpired):
        manager.load(session.id)
    assert manager.store.read(session.id) is None
    assert heard.events == [("ended", session.id, "expired", "gone")]
    with pytest.raises(UnknownSession):
        manager.load(session.id)


def test_rule9_ttl_is_the_nearer_of_the_idle_and_absolute_timeouts(make_manager: Callable[..., SessionManager],
                                                                   clock: Clock) -> None:
    now = clock.now
    assert make_manager("memory").ttl(Record(now, now, {})) is None
    kept = EXPIRED_KEPT  # past its expiry, so that the sweep tells its sockets "expired", not "logout"
    assert make_manager("memory", timeout=60).ttl(Record(now, now, {})) == 61 + kept
    both = make_manager("memory", timeout=60, absolute_timeout=100)
    assert both.ttl(Record(now - 90, now, {})) == 11 + kept  # the absolute timeout comes first
    assert both.ttl(Record(now - 200, now - 200, {})) == kept  # expired already: kept for the sweep only


def test_a_malformed_id_is_an_unknown_session(manager: SessionManager) -> None:
    with pytest.raises(UnknownSession):
        manager.load("../etc/passwd")


def test_create_stores_an_empty_record_at_once(manager: SessionManager) -> None:
    session_id, record, text = manager.create()
    assert manager.store.read(session_id) == text and record.data == {}
    assert manager.read(session_id) is not None


def test_rule7_rotation_then_logout_inside_atomic_are_told_in_order(manager: SessionManager) -> None:
    heard = Heard(manager)
    session = saved_session(manager, a=1)
    old_id = session.id
    with session.atomic():
        session.regenerate_id()
        new_id = session.id
        session.delete()
        assert heard.events == []  # both wait for the block's commit
    assert heard.events == [("rotated", old_id, new_id, "gone"), ("ended", new_id, "logout", "gone")]


def test_a_failing_listener_does_not_keep_the_others_or_the_session_from_a_rotation(
    manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def session_ended(self, session_id: str, reason: str) -> None:
            raise RuntimeError("a listener's bug")

        def session_rotated(self, old_id: str, new_id: str) -> None:
            raise RuntimeError("a listener's bug")

    manager.listeners.append(Broken())
    heard = Heard(manager)
    session = saved_session(manager, a=1)
    old_id = session.id
    session.regenerate_id()  # no exception: the rotation is committed, whatever a listener does
    assert session.id != old_id and session.save() is False
    assert heard.events == [("rotated", old_id, session.id, "gone")]
    session.delete()
    assert heard.events[-1] == ("ended", session.id, "logout", "gone")
    assert caplog.text.count("a listener failed") == 2


def test_writes_in_a_transaction_are_seen_by_others_once_committed(manager: SessionManager) -> None:
    session = saved_session(manager, n=1)
    before = manager.store.read(session.id)
    with session.atomic():
        session["n"] = 2
        session.save()
        assert manager.store.read(session.id) == before  # staged on every backend alike
    assert SharedSession.open(manager, session.id)["n"] == 2


@pytest.mark.redis
def test_writes_in_a_redis_transaction_are_seen_by_others_once_committed(redis_url: str, redis_client: object) -> None:
    manager = SessionManager(store=Store(type="ext:redis", url=redis_url), fingerprint=Fingerprint(secret=SECRET))
    test_writes_in_a_transaction_are_seen_by_others_once_committed(manager)


def test_a_file_lock_that_cannot_be_released_is_store_unavailable(
    make_manager: Callable[..., SessionManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = make_manager("file")
    session = saved_session(manager, a=1)
    real_unlink = os.unlink

    def failing_unlink(path: str) -> None:  # the disk fails as the lock file goes
        if str(path).endswith(".lock"):
            raise OSError(errno.EIO, "I/O error", path)
        real_unlink(path)

    monkeypatch.setattr("wsgisession.locks.os.unlink", failing_unlink)
    with pytest.raises(StoreUnavailable) as info:
        session["b"] = 2
        session.save()
    assert info.value.backend == "file"
    assert manager.store.holding() == 0  # the in-process lock is free all the same
