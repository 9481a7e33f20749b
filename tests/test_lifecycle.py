"""Lifecycle: the sweep and lifecycle messages, on a real SessionSockets (memory store)."""
from __future__ import annotations

from typing import Any, Callable

from tests.conftest import Clock
from wsgisession.manager import SessionManager
from wsgisession.realtime import SessionSockets


def bound(make_manager: Callable[..., SessionManager], **options: Any) -> tuple[SessionSockets, SessionManager]:
    manager = make_manager("memory", **options)
    sockets = SessionSockets(manager=manager, sweep_interval=None)
    sockets.on("noop", lambda sid, session: None)
    return sockets, manager


def test_sweep_ends_expired_and_vanished_sessions_only(make_manager: Callable[..., SessionManager],
                                                        clock: Clock) -> None:
    sockets, manager = bound(make_manager, timeout=10, touch_interval=1)
    live, expired, gone = (manager.new() for _ in range(3))
    for session in (live, expired, gone):
        session["x"] = 1
        session.save()
    sockets.bindings().update({"a": ("/", live.id), "b": ("/", expired.id), "c": ("/", gone.id)})
    ended: list[tuple[str, str]] = []

    class Listener:
        def session_ended(self, session_id: str, reason: str) -> None:
            ended.append((session_id, reason))

        def session_rotated(self, old_id: str, new_id: str) -> None:
            pass

    manager.listeners.append(Listener())
    manager.store.remove(gone.id)
    clock.advance(5)
    manager.open(live.id).touch()  # live was used: its idle timeout slid
    clock.advance(6)
    assert sockets.lifecycle.sweep() == 2
    assert ended == [(expired.id, "expired")]  # told to every process; gone was ended already
    assert manager.store.read(expired.id) is None and manager.store.read(live.id) is not None


def test_rotation_message_rebinds_this_process_sockets(make_manager: Callable[..., SessionManager]) -> None:
    sockets, manager = bound(make_manager)
    session = manager.new()
    session["x"] = 1
    session.save()
    sid = sockets.sio.manager.connect("eio-1", "/")  # a socket as python-socketio registers it
    sockets.bindings()[sid] = ("/", session.id)
    sockets.sio.enter_room(sid, sockets.room(session.id), namespace="/")
    session.regenerate_id()
    assert sockets.bindings()[sid] == ("/", session.id)
    assert sockets.sockets_of(session.id) == [sid]


def test_touch_bookkeeping_is_pruned(make_manager: Callable[..., SessionManager], clock: Clock) -> None:
    sockets, manager = bound(make_manager, timeout=100, touch_interval=10)
    sockets._last_touch.update({"old": clock.now - 20, "recent": clock.now - 1})
    sockets.forget_touch()
    assert list(sockets._last_touch) == ["recent"]
