"""Class-based Socket.IO namespaces whose handlers get the shared session.

    class Chat(SessionNamespace):
        def on_say(self, sid, session, text):
            session.setdefault("said", []).append(text)

    app.register_namespace(Chat("/chat"))
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

import socketio

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


class Dispatcher(Protocol):
    """What a namespace hands its events to (:class:`wsgisession.realtime.SessionSockets`)."""

    def connect(
        self, namespace: str, sid: str, environ: WSGIEnvironment, auth: Any, handler: Callable[..., Any] | None
    ) -> Any: ...

    def disconnect(self, sid: str, reason: Any, handler: Callable[..., Any] | None) -> None: ...

    def dispatch(self, sid: str, handler: Callable[..., Any], args: tuple[Any, ...]) -> Any: ...


class SessionNamespace(socketio.Namespace):  # type: ignore[misc]
    """A class-based namespace whose ``on_<event>(self, sid, session, *args)`` get the session.

    ``on_connect(self, sid, session, environ, auth)`` and
    ``on_disconnect(self, sid, reason)`` keep python-socketio's meaning.
    Register it with :meth:`wsgisession.realtime.SessionSockets.register_namespace`.
    """

    sockets: Dispatcher

    def trigger_event(self, event: str, *args: Any) -> Any:
        namespace = self.namespace or "/"
        method = getattr(self, "on_" + (event or ""), None)
        if event == "connect":
            sid, environ, *rest = args
            return self.sockets.connect(namespace, sid, environ, rest[0] if rest else None, method)
        if event == "disconnect":
            sid, *rest = args
            self.sockets.disconnect(sid, rest[0] if rest else None, method)
            return None
        if method is None:
            return None
        sid, *payload = args
        return self.sockets.dispatch(sid, method, tuple(payload))
