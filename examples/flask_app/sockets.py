"""The Flask example's socket handlers, named from the INI::

    wsgisession.handlers = examples.flask_app.sockets:register

Each handler gets the session as stored when its event arrives and saves
what it changes when it returns: the keys are the HTTP views' keys.
"""
from __future__ import annotations

from typing import Any

from wsgisession import SharedSession, WsgiSessionApp


def register(app: WsgiSessionApp) -> None:
    """Register the handlers on the composed app."""

    @app.on("whoami")
    def whoami(sid: str, session: SharedSession) -> Any:
        return session.get("user")  # written by the /login view

    @app.on("incr")
    def incr(sid: str, session: SharedSession) -> int:
        with session.atomic():  # the same counter as GET /incr, never a lost update
            session["n"] = session.get("n", 0) + 1
            return int(session["n"])

    @app.on("set_note")
    def set_note(sid: str, session: SharedSession, note: Any) -> dict[str, Any]:
        if isinstance(note, str):
            session["note"] = note[:200]  # GET / shows it
        return dict(session)
