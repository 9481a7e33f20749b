"""wsgisession.users: the per-user index of sessions, kept exact on every backend.

Through the session API (``bind_user``, saves, ``regenerate_id``, ``delete``)
and the manager's ``sessions_of_user`` / ``end_user_sessions``; the index is
read raw (``UserIndex.ids``, no pruning) where a test checks that no entry
outlives its session.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import gevent
import pytest
import redis

from tests.helpers import SECRET, Clock, record_endings
from wsgisession.backends import memory
from wsgisession.errors import SessionEnded, SessionValueError, UnknownSession
from wsgisession.ids import Fingerprint
from wsgisession.manager import SessionManager
from wsgisession.session import SharedSession
from wsgisession.store import Store
from wsgisession.users import LABEL_KEY, index_id

BACKENDS = ["memory", "sqlite", "file", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def make(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Callable[..., SessionManager]:
    def build(**options: Any) -> SessionManager:
        if request.param == "redis":
            url = request.getfixturevalue("redis_url")
            redis.Redis.from_url(url).flushdb()
            store = Store(type="ext:redis", url=url)
        else:
            if request.param == "memory":
                memory._NAMESPACES.clear()  # one store per process: no other test's users
            store = Store(type=request.param, data_dir=str(tmp_path / "sessions"))
        return SessionManager(store=store, fingerprint=Fingerprint(secret=SECRET), clock=clock, **options)

    return build


@pytest.fixture
def manager(make: Callable[..., SessionManager]) -> SessionManager:
    return make(timeout=600)


def login(manager: SessionManager, user: str, *, label: Any = None) -> SharedSession:
    """A visitor's session, then a login as an app writes it: rotate the id, bind the user."""
    session = SharedSession.new(manager)
    session["visits"] = 1
    session.save()
    session.regenerate_id()
    session.bind_user(user, label=label)
    session.save()
    return session


def listed(manager: SessionManager, user: str) -> list[str]:
    return [session_id for session_id, _ in manager.sessions_of_user(user)]


def test_a_bound_session_is_listed_with_its_record(manager: SessionManager, clock: Clock) -> None:
    phone = login(manager, "ann", label="Phone")
    clock.advance(5)
    laptop = login(manager, "ann", label={"browser": "Firefox"})
    login(manager, "bob")
    found = manager.sessions_of_user("ann")
    assert [session_id for session_id, _ in found] == [phone.id, laptop.id]  # oldest first
    assert [record.data[LABEL_KEY] for _, record in found] == ["Phone", {"browser": "Firefox"}]
    assert phone.user_id == "ann" and SharedSession.new(manager).user_id is None
    assert manager.users.ids("ann") == [phone.id, laptop.id]
    assert listed(manager, "nobody") == []


def test_an_integer_user_id_is_the_same_user_as_its_string(manager: SessionManager) -> None:
    session = login(manager, 42)  # type: ignore[arg-type]
    assert listed(manager, 42) == listed(manager, "42") == [session.id]  # type: ignore[arg-type]
    with pytest.raises(SessionValueError):
        session.bind_user("")
    with pytest.raises(SessionValueError):
        session.bind_user(True)  # type: ignore[arg-type]


def test_rotation_logout_and_rebinding_keep_the_index_exact(manager: SessionManager) -> None:
    session = login(manager, "ann")
    before = session.id
    session.regenerate_id()  # rotated again (a privilege change, say)
    assert manager.users.ids("ann") == [session.id] and before != session.id
    session.bind_user("bob")  # another user now: it moves
    session.save()
    assert manager.users.ids("ann") == [] and manager.users.ids("bob") == [session.id]
    del session[manager.users.user_key]  # unbound (a logout that keeps the session)
    session.save()
    assert manager.users.ids("bob") == []
    again = login(manager, "ann")
    again.delete()  # logout
    assert manager.users.ids("ann") == []
    assert manager.store.read(index_id("ann")) is None  # an empty index is removed, not kept


def test_an_expired_session_is_never_listed_and_leaves_the_index_at_the_listing(
    manager: SessionManager, clock: Clock
) -> None:
    old = login(manager, "ann")
    clock.advance(500)
    fresh = login(manager, "ann")
    clock.advance(200)  # old is past its idle timeout, fresh is not
    assert manager.users.ids("ann") == [old.id, fresh.id]  # expiry wrote nothing
    assert listed(manager, "ann") == [fresh.id]
    assert manager.users.ids("ann") == [fresh.id]  # the listing dropped it


def test_end_user_sessions_ends_all_but_the_kept_one_and_they_stay_ended(manager: SessionManager) -> None:
    ended = record_endings(manager)
    here, phone, tablet = login(manager, "ann"), login(manager, "ann"), login(manager, "ann")
    other = login(manager, "bob")
    stale = SharedSession(manager, phone.id, is_new=False, strict=True)
    stale.load()  # a handler of the phone's session, running
    assert manager.end_user_sessions("ann", keep=here.id, reason="password_changed") == 2
    assert sorted(ended) == sorted([(phone.id, "password_changed"), (tablet.id, "password_changed")])
    assert listed(manager, "ann") == [here.id] and listed(manager, "bob") == [other.id]
    assert manager.store.read(phone.id) is None and manager.store.read(tablet.id) is None
    stale["user_id"] = "ann"  # the stale handler tries to bring it back
    with pytest.raises(SessionEnded):
        stale.save()
    with pytest.raises(UnknownSession):
        SharedSession.open(manager, phone.id)


def test_an_index_record_is_not_a_session(manager: SessionManager) -> None:
    login(manager, "ann")
    with pytest.raises(UnknownSession):
        SharedSession.open(manager, index_id("ann"))


def test_an_ordinary_save_of_a_bound_session_does_not_touch_the_index(manager: SessionManager) -> None:
    session = login(manager, "ann")
    taken: list[str] = []
    begin = manager.store.begin

    def counting(session_id: str, timeout: float | None = None) -> Any:
        taken.append(session_id)
        return begin(session_id, timeout)

    manager.store.begin = counting  # type: ignore[method-assign]
    session["n"] = 1
    session.save()
    with session.atomic():
        session["n"] += 1
    fresh = SharedSession(manager, session.id, is_new=False)
    fresh["m"] = 1
    fresh.save()
    assert index_id("ann") not in taken and set(taken) == {session.id}
    session.delete()  # a logout: one index change
    assert taken.count(index_id("ann")) == 1


def test_concurrent_logins_logouts_rotations_and_expiry_leave_no_entry_behind(
    make: Callable[..., SessionManager], clock: Clock
) -> None:
    """Greenlets log in, rotate, rebind and log out for two users at once; the raw index must equal the truth."""
    manager = make(timeout=600)
    rng = random.Random(7)
    users = ["ann", "bob"]

    def device(n: int) -> None:
        session = SharedSession.new(manager)
        session["n"] = n
        session.save()
        for step in range(12):
            gevent.sleep(rng.random() * 0.002)
            action = rng.choice(["login", "rotate", "rebind", "save", "logout"])
            if action == "login":
                session.regenerate_id()
                session.bind_user(rng.choice(users))
                session.save()
            elif action == "rotate":
                session.regenerate_id()
            elif action == "rebind":
                with session.atomic():
                    session.bind_user(rng.choice(users))
            elif action == "save":
                session["step"] = step
                session.save()
            elif action == "logout":
                session.invalidate()
                session["n"] = n
                session.save()

    gevent.joinall([gevent.spawn(device, n) for n in range(16)], raise_error=True)
    for user in users:
        raw = manager.users.ids(user)
        truth = [session_id for session_id in raw if (record := manager.read(session_id)) is not None
                 and record.data.get(manager.users.user_key) == user]
        assert raw == truth, f"{user}: index entries outlive their sessions"
        assert len(set(raw)) == len(raw)
    clock.advance(601)  # every session expires; the listing drops them all
    for user in users:
        assert listed(manager, user) == [] and manager.users.ids(user) == []
