"""SessionNamespace: class-based handlers get the session, through the Socket.IO side's dispatcher."""
from __future__ import annotations

from typing import Any

from tests.helpers import bound, handshake, saved_session
from wsgisession.manager import SessionManager
from wsgisession.namespace import SessionNamespace
from wsgisession.session import SharedSession


class Counter(SessionNamespace):
    def __init__(self) -> None:
        super().__init__("/count")
        self.seen: list[Any] = []

    def on_connect(self, sid: str, session: SharedSession | None, environ: Any, auth: Any) -> None:
        self.seen.append(("connect", auth))

    def on_incr(self, sid: str, session: SharedSession, by: int) -> int:
        with session.atomic():
            session["n"] = session.get("n", 0) + by
            return int(session["n"])

    def on_disconnect(self, sid: str, reason: Any) -> None:
        self.seen.append(("disconnect", reason))


def test_namespace_handlers_get_the_session_and_their_arguments(manager: SessionManager) -> None:
    sockets, _ = bound(manager)
    counter = Counter()
    sockets.register_namespace(counter)
    session = saved_session(manager, n=1)
    sid = sockets.sio.manager.connect("eio-1", "/count")
    environ = handshake(sockets, session.id)
    assert counter.trigger_event("connect", sid, environ, {"token": "t"}) is None
    assert sockets.bindings() == {sid: ("/count", session.id)}
    assert counter.trigger_event("incr", sid, 2) == 3
    assert counter.trigger_event("incr", sid, 4) == 7
    assert SharedSession.open(manager, session.id)["n"] == 7
    assert counter.trigger_event("unknown", sid) is None  # no such handler: nothing runs
    counter.trigger_event("disconnect", sid, "client disconnect")
    assert counter.seen == [("connect", {"token": "t"}), ("disconnect", "client disconnect")]
    assert sockets.bindings() == {}
