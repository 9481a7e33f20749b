"""The Pyramid example's socket handlers: a class-based namespace named from the INI::

    wsgisession.handlers = examples.pyramid_app.sockets:CounterNamespace

Each ``on_<event>`` gets the session as stored when its event arrives and
saves what it changes when it returns: the keys are the HTTP views' keys.
"""
from __future__ import annotations

from typing import Any

from wsgisession import SessionNamespace, SharedSession


class CounterNamespace(SessionNamespace):
    """The default namespace ``/``."""

    def on_whoami(self, sid: str, session: SharedSession) -> Any:
        return session.get("user")  # written by the /login view

    def on_incr(self, sid: str, session: SharedSession) -> int:
        with session.atomic():  # the same counter as GET /incr, never a lost update
            session["n"] = session.get("n", 0) + 1
            return int(session["n"])

    def on_set_note(self, sid: str, session: SharedSession, note: Any) -> dict[str, Any]:
        if isinstance(note, str):
            session["note"] = note[:200]  # GET / shows it
        return dict(session)
