"""SessionSockets in this process: the connect join (rule 1), bindings, rebinding, ``session(sid)``.

Sockets are registered as python-socketio registers one (its manager), then
joined through :meth:`SessionSockets.connect` with real handshake environs;
the end-to-end paths are in tests/integration.
"""
from __future__ import annotations

from typing import Any, Callable

import gevent
import gevent.event
import pytest
import socketio

from tests.helpers import bound, handshake, joined, saved_session
from wsgisession.errors import UnknownSession
from wsgisession.ids import new_session_id
from wsgisession.manager import SessionManager
from wsgisession.origins import VERDICT_KEY
from wsgisession.session import SharedSession


def refusal(connect: Callable[[], Any]) -> str:
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as info:
        connect()
    return str(info.value.error_args["message"])


def test_rule1_connect_refusals_carry_their_reason(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session = saved_session(manager, a=1)
    cases = {
        "no_cookie": handshake(sockets, None),
        "bad_signature": {**handshake(sockets, None), "HTTP_COOKIE": f"{sockets.cookie.name}={session.id}.forged"},
        "unknown_session": handshake(sockets, new_session_id()),
        "bad_origin": handshake(sockets, session.id, HTTP_ORIGIN="http://evil.example"),
    }
    for reason, environ in cases.items():
        sid = sockets.sio.manager.connect(f"eio-{reason}", "/")
        assert refusal(lambda: sockets.connect("/", sid, environ, None, None)) == reason
    assert sockets.bindings() == {}


def test_rule1_anonymous_sockets_are_admitted_only_when_allowed(manager: SessionManager) -> None:
    sockets, _ = bound(manager, allow_anonymous=True)
    sid = sockets.sio.manager.connect("eio-1", "/")
    assert sockets.connect("/", sid, handshake(sockets, new_session_id()), None, None) is None
    assert sockets.bindings() == {} and sockets.session_of(sid) is None
    started = sockets.start_session(sid)
    assert sockets.bindings() == {sid: ("/", started.id)}
    assert manager.read(started.id) is not None  # stored at once: the cookie exchange can name it


def test_rule1_the_origin_is_judged_once_per_handshake(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session = saved_session(manager, a=1)
    environ = handshake(sockets, session.id, HTTP_ORIGIN="http://evil.example")
    first = sockets.sio.manager.connect("eio-1", "/")
    assert refusal(lambda: sockets.connect("/", first, environ, None, None)) == "bad_origin"
    environ["HTTP_ORIGIN"] = "http://localhost"  # another namespace of the same handshake
    second = sockets.sio.manager.connect("eio-1", "/chat")
    assert refusal(lambda: sockets.connect("/chat", second, environ, None, None)) == "bad_origin"
    assert environ[VERDICT_KEY]


def test_bindings_are_a_copy_and_bound_sessions_their_ids(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session = saved_session(manager, a=1)
    sid = joined(sockets, session.id, "eio-1")
    copy = sockets.bindings()
    copy.clear()
    assert sockets.bindings() == {sid: ("/", session.id)}
    assert sockets.bound_sessions() == {session.id}


def test_rule8_rebind_moves_the_sockets_and_their_rooms(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session, other = saved_session(manager, a=1), saved_session(manager, b=2)
    sid, bystander = joined(sockets, session.id, "eio-1"), joined(sockets, other.id, "eio-2")
    new_id = new_session_id()
    sockets.rebind(session.id, new_id)
    assert sockets.bindings() == {sid: ("/", new_id), bystander: ("/", other.id)}
    assert sockets.sockets_of(new_id) == [sid] and sockets.sockets_of(session.id) == []
    assert sockets.sockets_of(other.id) == [bystander]


def test_session_of_a_socket_outside_a_handler_is_fresh_and_saved(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session = saved_session(manager, n=1)
    sid = joined(sockets, session.id, "eio-1")
    elsewhere = SharedSession.open(manager, session.id)
    elsewhere["n"] = 2
    elsewhere.save()
    with sockets.session(sid) as mine:
        assert mine["n"] == 2  # as stored when the block starts
        mine["seen"] = True
    assert dict(SharedSession.open(manager, session.id)) == {"n": 2, "seen": True}
    with pytest.raises(KeyError):
        with sockets.session(sid) as mine:
            mine["lost"] = True
            raise KeyError("the block failed")
    assert "lost" not in SharedSession.open(manager, session.id)


def test_session_of_an_unbound_socket_is_an_error(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    with pytest.raises(UnknownSession):
        with sockets.session("nobody"):
            pass  # pragma: no cover


def test_an_event_whose_session_lock_is_not_had_in_time_is_acked_lock_timeout(
    make_manager: Callable[..., SessionManager]
) -> None:
    manager = make_manager("memory", store_options={"lock_timeout": 0.05})
    sockets, _ = bound(manager)

    def incr(sid: str, session: SharedSession) -> int:
        with session.atomic():
            session["n"] = session.get("n", 0) + 1
            return int(session["n"])

    sockets.on("incr", incr)
    session = saved_session(manager, n=0)
    sid = joined(sockets, session.id, "eio-1")
    holding = gevent.event.Event()

    def hold() -> None:
        with manager.store.transaction(session.id):  # another process's request, say
            holding.set()
            gevent.sleep(0.3)

    holder = gevent.spawn(hold)
    holding.wait()
    assert sockets.dispatch(sid, incr, ()) == {"error": "lock_timeout"}
    holder.join()
    assert sockets.dispatch(sid, incr, ()) == 1
    assert sockets.bindings() == {sid: ("/", session.id)}  # the socket stays


def test_rule7_a_login_then_logout_inside_atomic_ends_the_socket(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session = saved_session(manager, a=1)
    sid = joined(sockets, session.id, "eio-1")
    with session.atomic():
        session.regenerate_id()  # the socket follows the new id...
        session.delete()  # ...and then ends with it
    assert sid not in sockets.bindings() and sockets.bindings() == {}
    assert sockets.sockets_of(session.id) == []


# -- a handler's session has the view's API (Beaker's; #19) ------------------------
def test_beaker_a_handlers_save_is_made_when_it_returns(make_manager: Callable[..., SessionManager]) -> None:
    manager = make_manager("memory", autosave=False)
    sockets, _ = bound(manager)
    session = saved_session(manager, a=1)
    sid = joined(sockets, session.id, "eio-1")

    def save_then_change(sid: str, session: SharedSession) -> bool:
        session["a"] = 2
        session.save()
        session["b"] = 3  # after save(): kept, as in a view
        return manager.read(session.id).data == {"a": 1}  # type: ignore[union-attr]  # not written yet

    def change_only(sid: str, session: SharedSession) -> None:
        session["a"] = "unsaved"

    assert sockets.dispatch(sid, save_then_change, ()) is True
    assert dict(SharedSession.open(manager, session.id)) == {"a": 2, "b": 3}
    assert sockets.dispatch(sid, change_only, ()) is None
    assert dict(SharedSession.open(manager, session.id)) == {"a": 2, "b": 3}  # autosave off: no save()


def test_beaker_a_handler_that_raises_after_save_stores_nothing(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session = saved_session(manager, a=1)
    sid = joined(sockets, session.id, "eio-1")

    def save_then_raise(sid: str, session: SharedSession) -> None:
        session["a"] = "changed"
        session.save()
        raise RuntimeError("the handler fails after save()")

    assert sockets.dispatch(sid, save_then_raise, ()) is None  # acked empty: the app's bug, logged
    assert dict(SharedSession.open(manager, session.id)) == {"a": 1}


def test_beaker_a_handlers_session_has_the_views_api(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    session = saved_session(manager)
    other = saved_session(manager, theirs=True)
    sid = joined(sockets, session.id, "eio-1")

    def beaker(sid: str, session: SharedSession) -> dict[str, Any]:
        found = session.get_by_id(other.id)
        session.lock()
        try:
            session["n"] = session.get("n", 0) + 1
        finally:
            session.unlock()
        return {
            "truthy": bool(session.copy() == {"n": 1} and session), "has_key": session.has_key("n"),
            "created": session.created == session["_creation_time"] > 0, "accessed": session.accessed(),
            "by_id": found is not None and found.copy(), "dirty": session.dirty(), "cookie": session.path,
        }

    assert sockets.dispatch(sid, beaker, ()) == {
        "truthy": True, "has_key": True, "created": True, "accessed": True, "by_id": {"theirs": True},
        "dirty": False, "cookie": "/",  # unlock() saved the change
    }
    assert dict(SharedSession.open(manager, session.id)) == {"n": 1}
