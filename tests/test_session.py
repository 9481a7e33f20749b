"""SharedSession: Beaker's API, merged saves (rule 4), atomic() (rule 5), endings (rules 7-9)."""
from __future__ import annotations

import datetime
import uuid
from typing import Any

import gevent
import pytest

from tests.helpers import Clock, Color, saved_session, stored
from wsgisession.errors import (
    ConfigurationError,
    LockTimeout,
    SessionEnded,
    SessionExpired,
    SessionValueError,
    UnknownSession,
)
from wsgisession.manager import SessionManager
from wsgisession.session import SharedSession


def test_new_session_is_stored_on_first_save(manager: SessionManager) -> None:
    session = SharedSession.new(manager)
    assert session.is_new and manager.store.read(session.id) is None
    session["a"] = 1
    assert session.save() and not session.is_new
    assert stored(manager, session.id) == {"a": 1}


def test_beaker_mapping_api(manager: SessionManager) -> None:
    session = saved_session(manager, a=1, b=2)
    assert session.get("a") == 1 and "b" in session and len(session) == 2 and sorted(session) == ["a", "b"]
    assert session.setdefault("c", 3) == 3 and session.pop("b") == 2
    session.persist()
    assert stored(manager, session.id) == {"a": 1, "c": 3}


def test_rule4_read_only_use_writes_nothing(manager: SessionManager) -> None:
    session = saved_session(manager, a=1)
    before = manager.store.read(session.id)
    reader = SharedSession.open(manager, session.id)
    assert reader["a"] == 1
    assert reader.save() is False
    assert manager.store.read(session.id) == before


def test_rule4_writers_of_different_keys_lose_nothing(manager: SessionManager) -> None:
    session = saved_session(manager, a=0)
    first, second = SharedSession.open(manager, session.id), SharedSession.open(manager, session.id)
    first["x"] = 1
    second["y"] = 2
    del second["a"]
    first.save()
    second.save()
    assert stored(manager, session.id) == {"x": 1, "y": 2}
    assert dict(second) == {"x": 1, "y": 2}  # a save also brings the latest state


def test_rule4_a_stale_read_only_copy_does_not_undo_a_write(manager: SessionManager) -> None:
    session = saved_session(manager, n=1)
    stale = SharedSession.open(manager, session.id)
    writer = SharedSession.open(manager, session.id)
    writer["n"] = 2
    writer.save()
    assert stale["n"] == 1
    stale.save()
    assert stored(manager, session.id) == {"n": 2}


def test_rule3_nested_in_place_edits_are_saved(manager: SessionManager) -> None:
    session = saved_session(manager, cart={"items": ["apple"]})
    other = SharedSession.open(manager, session.id)
    other["cart"]["items"].append("pear")
    assert other.changes() == ({"cart": {"items": ["apple", "pear"]}}, [])
    other.save()
    assert stored(manager, session.id) == {"cart": {"items": ["apple", "pear"]}}


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda s: s.pop("n"), {"user": "ann"}),
        (lambda s: s.setdefault("new", 1), {"user": "ann", "n": 1, "new": 1}),
        (lambda s: s.update(n=2), {"user": "ann", "n": 2}),
        (lambda s: s.clear(), {}),
        (lambda s: s.popitem(), {"n": 1}),  # the first key
        (lambda s: s.__delitem__("user"), {"n": 1}),
    ],
)
def test_every_change_of_scalar_only_data_is_saved(
    manager: SessionManager, change: Any, expected: dict[str, Any]
) -> None:
    # scalars only and unchanged since the load: the end-of-event check is skipped until a key changes
    session = saved_session(manager, user="ann", n=1)
    other = SharedSession.open(manager, session.id)
    assert not other.dirty() and not other.save()
    change(other)
    assert other.dirty()
    assert other.save()
    assert stored(manager, session.id) == expected


def test_scalar_only_data_changed_inside_and_after_atomic_is_saved(manager: SessionManager) -> None:
    session = saved_session(manager, n=1)
    other = SharedSession.open(manager, session.id)
    other["pending"] = "x"  # an unsaved change re-applied on top of the fresh load
    with other.atomic():
        other["n"] += 1
    assert stored(manager, session.id) == {"n": 2, "pending": "x"}
    other["after"] = True  # after the block, as a handler might
    assert other.save()
    assert stored(manager, session.id) == {"n": 2, "pending": "x", "after": True}
    with pytest.raises(KeyError), other.atomic():
        other["n"] = 99
        raise KeyError("rolled back")
    assert not other.save() and other["n"] == 2


def test_values_round_trip_exactly(manager: SessionManager) -> None:
    values = {"big": 2**70, "neg": -(2**65), "float": 0.1, "text": "Zoë ✓", "nested": {"list": [1, 1.0, True, None]}}
    session = saved_session(manager, **values)
    assert dict(SharedSession.open(manager, session.id)) == values
    assert SharedSession.open(manager, session.id)["nested"]["list"][2] is True


def test_a_change_of_type_counts_as_a_change(manager: SessionManager) -> None:
    session = saved_session(manager, flag=1, cfg={"flag": 1, "list": [1]})
    session["flag"] = True
    session["cfg"]["flag"] = True
    session["cfg"]["list"][0] = 1.0
    assert session.dirty()
    session.save()
    assert stored(manager, session.id) == {"flag": True, "cfg": {"flag": True, "list": [1.0]}}


def test_rule6_lock_wait_is_bounded(make_manager: Any) -> None:
    manager = make_manager("memory", store_options={"lock_timeout": 0.05})
    session = saved_session(manager, n=0)
    holder_in = gevent.event.Event()

    def hold() -> None:
        with manager.store.transaction(session.id):
            holder_in.set()
            gevent.sleep(0.3)

    holder = gevent.spawn(hold)
    holder_in.wait()
    with pytest.raises(LockTimeout) as info:
        with SharedSession.open(manager, session.id).atomic():
            pass
    assert info.value.timeout == pytest.approx(0.05)
    holder.join()


def test_value_json_cannot_hold_fails_at_save_and_keeps_old_data(manager: SessionManager) -> None:
    session = saved_session(manager, keep="me")
    session["bad"] = {1, 2}
    with pytest.raises(SessionValueError) as info:
        session.save()
    assert info.value.key == "bad" and "JSON" in str(info.value)
    assert stored(manager, session.id) == {"keep": "me"}
    session["nan"] = float("nan")
    del session["bad"]
    with pytest.raises(SessionValueError):
        session.save()


def test_a_session_orjson_cannot_snapshot_still_tracks_changes(manager: SessionManager) -> None:
    session = saved_session(manager, big=2**80, n=0)
    other = SharedSession.open(manager, session.id)
    assert not other.dirty()
    other["n"] = 1
    assert other.changes() == ({"n": 1}, [])
    other.save()
    with SharedSession.open(manager, session.id).atomic() as mine:
        mine["big"] += 1
    assert stored(manager, session.id) == {"big": 2**80 + 1, "n": 1}


def test_rule7_delete_ends_the_session_and_a_stale_save_raises(manager: SessionManager) -> None:
    session = saved_session(manager, a=1)
    stale = SharedSession.open(manager, session.id)
    session.delete()
    assert manager.store.read(session.id) is None
    stale["a"] = 2
    with pytest.raises(SessionEnded):
        stale.save()
    assert manager.store.read(session.id) is None
    with pytest.raises(SessionEnded):
        session.save()


def test_invalidate_gives_a_new_empty_session_and_kills_the_old_id(manager: SessionManager) -> None:
    session = saved_session(manager, a=1)
    old_id = session.id
    session.invalidate()
    assert session.id != old_id and session.is_new and dict(session) == {}
    with pytest.raises(UnknownSession):
        SharedSession.open(manager, old_id)
    session["b"] = 2
    session.save()
    assert stored(manager, session.id) == {"b": 2}


def test_rule8_regenerate_id_moves_the_data_and_kills_the_old_id(manager: SessionManager) -> None:
    events: list[tuple[str, str, str]] = []

    class Listener:
        def session_ended(self, session_id: str, reason: str) -> None:
            events.append(("ended", session_id, reason))

        def session_rotated(self, old_id: str, new_id: str) -> None:
            events.append(("rotated", old_id, new_id))

    manager.listeners.append(Listener())
    session = saved_session(manager, a=1)
    old_id = session.id
    session["b"] = 2
    session.regenerate_id()
    assert session.id != old_id and stored(manager, session.id) == {"a": 1, "b": 2}
    assert manager.store.read(old_id) is None
    assert events == [("rotated", old_id, session.id)]
    session.delete()
    assert events[-1] == ("ended", session.id, "logout")


def test_rule9_idle_timeout_expires_and_touch_slides_it(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory", timeout=100, touch_interval=10)
    session = saved_session(manager, a=1)
    clock.advance(50)
    assert SharedSession.open(manager, session.id).touch() is True  # due: slides the idle timeout
    assert SharedSession.open(manager, session.id).touch() is False  # at most once per interval
    clock.advance(80)
    assert SharedSession.open(manager, session.id)["a"] == 1
    clock.advance(101)
    with pytest.raises(SessionExpired):
        SharedSession.open(manager, session.id)
    assert manager.store.read(session.id) is None


def test_rule9_absolute_timeout_is_never_extended(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory", timeout=100, absolute_timeout=150, touch_interval=1)
    session = saved_session(manager, a=1)
    for _ in range(3):
        clock.advance(45)
        touched = SharedSession.open(manager, session.id)
        touched["seen"] = clock.now
        touched.save()
    clock.advance(20)
    with pytest.raises(SessionExpired):
        SharedSession.open(manager, session.id)


def test_lazy_session_with_expired_id_starts_over_with_a_new_id(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory", timeout=10)
    session = saved_session(manager, a=1)
    clock.advance(11)
    lazy = SharedSession(manager, session.id, is_new=False)
    assert dict(lazy) == {} and lazy.id != session.id and lazy.is_new


def test_strict_session_raises_instead_of_starting_over(manager: SessionManager) -> None:
    session = saved_session(manager, a=1)
    strict = SharedSession(manager, session.id, is_new=False, strict=True)
    session.delete()
    with pytest.raises(SessionEnded):
        strict.get("a")


def test_repr_never_shows_the_raw_id(manager: SessionManager) -> None:
    session = saved_session(manager, a=1)
    assert session.id not in repr(session)


# -- atomic(): rule 5 ---------------------------------------------------------------
def test_rule5_atomic_increments_never_lose_an_update(manager: SessionManager) -> None:
    session = saved_session(manager, n=0)

    def incr() -> None:
        mine = SharedSession.open(manager, session.id)
        with mine.atomic():
            value = mine["n"]
            gevent.sleep(0.001)  # a forced yield between load and save
            mine["n"] = value + 1

    gevent.joinall([gevent.spawn(incr) for _ in range(50)], raise_error=True)
    assert stored(manager, session.id) == {"n": 50}


def test_rule5_atomic_keeps_unsaved_changes_and_rolls_back_on_error(manager: SessionManager) -> None:
    session = saved_session(manager, n=0)
    session["pending"] = "yes"
    with pytest.raises(RuntimeError):
        with session.atomic():
            session["n"] = 99
            raise RuntimeError("boom")
    assert session["n"] == 0 and session["pending"] == "yes"
    with session.atomic():
        session["n"] += 1
        with session.atomic():  # reentrant
            session["n"] += 1
    assert stored(manager, session.id) == {"n": 2, "pending": "yes"}


@pytest.mark.parametrize("bad", [uuid.UUID(int=7), Color.RED, float("inf"), datetime.date(2026, 1, 1)])
def test_atomic_save_of_a_value_json_cannot_hold_raises_and_keeps_old_data(manager: SessionManager, bad: Any) -> None:
    session = saved_session(manager, n=1)
    with pytest.raises(SessionValueError) as info:
        with SharedSession.open(manager, session.id).atomic() as mine:
            mine["n"] += 1
            mine["bad"] = [bad]
    assert info.value.key == "bad"
    assert stored(manager, session.id) == {"n": 1}


def test_rule8_a_rotation_inside_atomic_saves_under_the_new_id_only(manager: SessionManager) -> None:
    session = saved_session(manager, n=1)
    old_id = session.id
    with session.atomic():
        session["n"] += 1
        session.regenerate_id()
        session["user"] = "ann"
    assert session.id != old_id
    assert manager.store.read(old_id) is None  # the old id stays dead
    assert dict(SharedSession.open(manager, session.id)) == {"n": 2, "user": "ann"}


# -- Beaker's session API (what a Beaker app calls; docs/beaker.rst) -------------
def in_request(manager: SessionManager, session_id: str | None = None) -> SharedSession:
    """A session as the middleware hands one to a view: lazily loaded, save() deferred to the response."""
    session = SharedSession(manager, session_id, is_new=session_id is None)
    session.defer_save = True
    return session


def test_beaker_an_empty_session_is_true(manager: SessionManager) -> None:
    assert SharedSession.new(manager) and len(SharedSession.new(manager)) == 0
    assert in_request(manager, saved_session(manager).id)  # not loaded yet: true without a load


def test_beaker_has_key_copy_and_get_by_id(manager: SessionManager) -> None:
    session = saved_session(manager, a=1, nested={"b": [2]})
    assert session.has_key("a") and not session.has_key("z")
    copy = session.copy()
    assert type(copy) is dict and copy == {"a": 1, "nested": {"b": [2]}}
    copy["a"] = 9
    assert session["a"] == 1
    found = SharedSession.new(manager).get_by_id(session.id)
    assert found is not None and found["a"] == 1 and found.id == session.id
    found["a"] = 2
    found.save()  # not a request's session: written at once, as Beaker's Session.save()
    assert stored(manager, session.id) == {"a": 2, "nested": {"b": [2]}}


@pytest.mark.parametrize("session_id", ["A" * 43, "jil2j34il2j34ilj23", "../../etc/passwd", ""])
def test_beaker_get_by_id_of_no_session_is_none(manager: SessionManager, session_id: str) -> None:
    assert SharedSession.new(manager).get_by_id(session_id) is None
    assert manager.store.read("A" * 43) is None  # nothing created for a well-formed unknown id


def test_beaker_get_by_id_of_an_expired_session_is_none(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory", timeout=60)
    session = saved_session(manager, a=1)
    clock.advance(61)
    assert SharedSession.new(manager).get_by_id(session.id) is None


def test_beaker_get_by_id_takes_a_string(manager: SessionManager) -> None:
    with pytest.raises(TypeError, match="takes a session id"):
        SharedSession.new(manager).get_by_id(42)  # type: ignore[arg-type]


def test_beaker_creation_and_accessed_time_keys(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory")
    first = saved_session(manager, a=1)
    created = first.created
    clock.advance(30)
    session = in_request(manager, first.id)
    assert session["_creation_time"] == created == session.get("_creation_time")
    assert session["_accessed_time"] == clock.now  # this request's access, as Beaker's
    assert "_creation_time" in session and session.has_key("_accessed_time")
    assert sorted(session) == ["a"] and session.copy() == {"a": 1}  # not data: never stored
    for key in ("_creation_time", "_accessed_time"):
        with pytest.raises(TypeError, match="read-only"):
            session[key] = 0


def test_beaker_created_and_last_accessed_are_right_before_any_data_access(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory")
    first = saved_session(manager, a=1)
    created = first.created
    clock.advance(10)
    session = in_request(manager, first.id)
    assert session.created == created and session.last_accessed == created  # loaded first
    assert SharedSession.new(manager).last_accessed is None


def test_beaker_last_accessed_stays_the_time_the_request_found(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory")
    session = saved_session(manager, a=1)
    assert session.last_accessed is None  # a new session's, as Beaker's
    first_write = clock.now
    clock.advance(5)
    later = in_request(manager, session.id)
    later["a"] = 2
    later.commit()
    assert later.last_accessed == first_write  # Beaker's: the previous access, not this request's own save
    clock.advance(5)
    assert in_request(manager, session.id).last_accessed == first_write + 5


def test_beaker_reading_the_id_is_an_access(manager: SessionManager) -> None:
    session = in_request(manager, saved_session(manager).id)
    assert not session.accessed()
    assert session.id
    assert session.accessed()


def test_beaker_save_in_a_request_waits_for_its_end(manager: SessionManager) -> None:
    original = saved_session(manager, a=1)
    session = in_request(manager, original.id)
    session["a"] = 2
    assert session.save() is False and session.dirty()  # asked for, not written yet
    session["b"] = 3  # a change after save() is kept, as in Beaker
    assert stored(manager, original.id) == {"a": 1}
    assert session.finish(autosave=False)
    assert stored(manager, original.id) == {"a": 2, "b": 3} and not session.dirty()


def test_beaker_without_save_and_autosave_nothing_is_stored(manager: SessionManager) -> None:
    original = saved_session(manager, a=1)
    session = in_request(manager, original.id)
    session["a"] = 2
    assert session.dirty() and not session.finish(autosave=False)
    assert stored(manager, original.id) == {"a": 1}


def test_beaker_save_of_a_new_empty_session_stores_it(manager: SessionManager) -> None:
    session = in_request(manager)
    session.save()
    assert session.finish(autosave=False) and stored(manager, session.id) == {}
    unsaved = in_request(manager)
    unsaved.get("a")
    assert not unsaved.finish(autosave=True) and manager.store.read(unsaved.id) is None  # rule 4: read-only


def test_beaker_save_of_an_ended_session_raises_at_once(manager: SessionManager) -> None:
    session = in_request(manager, saved_session(manager, a=1).id)
    session.delete()
    with pytest.raises(SessionEnded):
        session.save()
    assert session.dirty() and not session.finish(autosave=True)


def test_beaker_save_of_a_value_json_cannot_hold_fails_at_once(manager: SessionManager) -> None:
    session = in_request(manager, saved_session(manager, a=1).id)
    session["bad"] = {1, 2}
    with pytest.raises(SessionValueError, match="'bad'"):
        session.save()


def test_beaker_persist_without_save_writes_only_a_due_access_time(make_manager: Any, clock: Clock) -> None:
    manager = make_manager("memory", timeout=600, touch_interval=60, autosave=False)
    original = saved_session(manager, a=1)
    clock.advance(120)
    session = in_request(manager, original.id)
    session["a"] = 2
    session.persist()
    assert stored(manager, original.id) == {"a": 1}
    assert manager.read(original.id).accessed == clock.now  # type: ignore[union-attr]  # the touch
    session.save()
    session.persist()
    assert stored(manager, original.id) == {"a": 2}


def test_beaker_lock_and_unlock_are_atomic(manager: SessionManager) -> None:
    original = saved_session(manager, n=0)
    session = in_request(manager, original.id)
    elsewhere = SharedSession.open(manager, original.id)
    session.lock()
    try:
        elsewhere_done = gevent.spawn(lambda: (elsewhere.__setitem__("n", 5), elsewhere.commit()))
        gevent.sleep(0.05)
        assert not elsewhere_done.ready()  # waits for the lock
        session["n"] += 1
    finally:
        session.unlock()
    elsewhere_done.join(timeout=5)
    assert stored(manager, original.id) == {"n": 5}  # the later writer's value, over ours: nothing lost
    with pytest.raises(RuntimeError, match="without a lock"):
        session.unlock()


def test_beaker_cookie_attributes_per_session(manager: SessionManager) -> None:
    session = in_request(manager)
    assert (session.domain, session.path, session.cookie_expires) == (None, "/", True)
    assert (session.httponly, session.secure, session.samesite) == (True, False, "Lax")
    session.domain = ".hoop.com"
    session.path = "/app"
    session.cookie_expires = datetime.timedelta(days=1)
    session.secure, session.samesite, session.httponly = True, "Strict", False
    assert session.cookie_changed and session.accessed()
    assert (session.domain, session.path, session.samesite) == (".hoop.com", "/app", "Strict")


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("domain", "a b.com", "domain"),
        ("domain", 3, "domain"),
        ("path", "app", "path"),
        ("cookie_expires", "tomorrow", "cookie_expires"),
        ("cookie_expires", -5, "cookie_expires"),
        ("samesite", "sometimes", "samesite"),
        ("samesite", "None", "secure"),  # needs secure=True
        ("secure", "yes", "secure"),
    ],
)
def test_beaker_bad_cookie_attributes_are_refused(manager: SessionManager, name: str, value: Any, match: str) -> None:
    session = in_request(manager)
    with pytest.raises(ConfigurationError, match=match) as info:
        setattr(session, name, value)
    assert info.value.key in (name, "samesite")
    assert not session.cookie_changed


def test_beaker_a_lock_left_held_is_freed_at_the_end(manager: SessionManager, caplog: pytest.LogCaptureFixture) -> None:
    original = saved_session(manager, n=0)
    session = in_request(manager, original.id)
    session.lock()
    session["n"] = 1
    session.finish(autosave=True)  # the view forgot unlock()
    assert "lock() without unlock()" in caplog.text and original.id not in caplog.text
    assert stored(manager, original.id) == {"n": 1}

    def take() -> bool:
        with manager.store.transaction(original.id, timeout=0.1):  # another greenlet: free again
            return True

    assert gevent.spawn(take).get(timeout=5)
