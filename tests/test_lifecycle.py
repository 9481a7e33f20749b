"""Lifecycle: the sweep and lifecycle messages, on a real SessionSockets (memory store)."""
from __future__ import annotations

from typing import Callable

from tests.helpers import Clock, bound, joined, record_endings
from wsgisession.manager import SessionManager
from wsgisession.session import SharedSession


def test_sweep_ends_expired_and_vanished_sessions_only(make_manager: Callable[..., SessionManager],
                                                        clock: Clock) -> None:
    sockets, manager = bound(make_manager("memory", timeout=10, touch_interval=1))
    live, expired, gone = (SharedSession.new(manager) for _ in range(3))
    for session in (live, expired, gone):
        session["x"] = 1
        session.save()
    on_live, on_expired, on_gone = (joined(sockets, s.id, f"eio-{n}") for n, s in enumerate((live, expired, gone)))
    assert sockets.bindings() == {on_live: ("/", live.id), on_expired: ("/", expired.id), on_gone: ("/", gone.id)}
    ended = record_endings(manager)
    manager.store.remove(gone.id)
    clock.advance(5)
    SharedSession.open(manager, live.id).touch()  # live was used: its idle timeout slid
    clock.advance(6)
    assert sockets.lifecycle.sweep() == 2
    assert ended == [(expired.id, "expired")]  # told to every process; gone was ended already
    assert manager.store.read(expired.id) is None and manager.store.read(live.id) is not None
    assert sockets.bindings() == {on_live: ("/", live.id)}  # the sockets of both were ended


def test_rotation_message_rebinds_this_process_sockets(make_manager: Callable[..., SessionManager]) -> None:
    sockets, manager = bound(make_manager("memory"))
    session = SharedSession.new(manager)
    session["x"] = 1
    session.save()
    sid = joined(sockets, session.id, "eio-1")
    assert sockets.bindings()[sid] == ("/", session.id)
    session.regenerate_id()
    assert sockets.bindings()[sid] == ("/", session.id)
    assert sockets.sockets_of(session.id) == [sid]


def test_touch_bookkeeping_is_pruned(make_manager: Callable[..., SessionManager], clock: Clock) -> None:
    sockets, manager = bound(make_manager("memory", timeout=100, touch_interval=10))
    sockets._last_touch.update({"old": clock.now - 20, "recent": clock.now - 1})
    sockets.forget_touch()
    assert list(sockets._last_touch) == ["recent"]
