"""Session lives reach sockets: endings, rotations and expiry, in every process.

:class:`Lifecycle` listens to the :class:`~wsgisession.manager.SessionManager`.
When a session ends (logout, expiry, ``disconnect_session``) every socket bound
to it, in every worker and host, gets ``session_ended`` with the reason and is
disconnected; when a session changes id (login rotation) its sockets follow.
Messages go over python-socketio's message queue when one is configured
(:mod:`wsgisession.fanout`), else stay in the process. A periodic sweep ends
this process's sockets whose session expired or vanished while they were
silent.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol

import gevent
import socketio

from .errors import WsgiSessionError
from .fanout import LifecycleManager, publish
from .manager import SessionManager

log = logging.getLogger(__name__)


class Sockets(Protocol):
    """What the lifecycle needs of the Socket.IO side (:class:`wsgisession.realtime.SessionSockets`)."""

    sio: socketio.Server
    manager: SessionManager

    def room(self, session_id: str) -> str: ...

    def namespaces(self) -> list[str]: ...

    def bound_sessions(self) -> set[str]: ...

    def end_socket(self, namespace: str, sid: str, reason: str) -> None: ...

    def rebind(self, old_id: str, new_id: str) -> None: ...

    def forget_touch(self, session_id: str | None = None) -> None: ...


class Lifecycle:
    """Ends, rebinds and sweeps the sockets of sessions."""

    def __init__(self, sockets: Sockets, *, sweep_interval: float | None = 30.0,
                 census_timeout: float = 0.25) -> None:
        self.sockets = sockets
        self.sweep_interval = sweep_interval
        self.census_timeout = census_timeout
        self._censuses: dict[str, dict[str, int]] = {}  # census id -> room -> sockets counted so far
        self._sweeper: gevent.Greenlet[[], None] | None = None
        if isinstance(sockets.sio.manager, LifecycleManager):
            sockets.sio.manager.receiver = self.receive
        sockets.manager.listeners.append(self)

    # -- manager listener ------------------------------------------------
    def session_ended(self, session_id: str, reason: str) -> None:
        self.sockets.forget_touch(session_id)
        self.end_sockets(session_id, reason=reason)

    def session_rotated(self, old_id: str, new_id: str) -> None:
        self.sockets.forget_touch(old_id)
        publish(self.sockets.sio, "rotated", {"old": old_id, "new": new_id}, self.receive)

    def end_sockets(self, session_id: str, *, reason: str) -> None:
        """End a session's sockets in every process."""
        publish(self.sockets.sio, "ended", {"room": self.sockets.room(session_id), "reason": reason}, self.receive)

    # -- messages from any process (this one included) ---------------------
    def receive(self, event: str, payload: dict[str, Any]) -> None:
        sockets = self.sockets
        if event == "ended":
            room, reason = str(payload["room"]), str(payload["reason"])
            for namespace in sockets.namespaces():
                for sid, _ in list(sockets.sio.manager.get_participants(namespace, room)):
                    sockets.end_socket(namespace, sid, reason)
        elif event == "rotated":
            sockets.rebind(str(payload["old"]), str(payload["new"]))
        elif event == "census":
            here = {room: n for room, n in self.local_counts([str(r) for r in payload.get("rooms", [])]).items() if n}
            if here:  # a process with none of these sockets has nothing to add
                publish(sockets.sio, "census_reply", {"id": payload.get("id"), "counts": here}, self.receive)
        elif event == "census_reply":
            counts = self._censuses.get(str(payload.get("id")))
            if counts is not None:
                for room, n in dict(payload.get("counts", {})).items():
                    if room in counts:
                        counts[room] += int(n)

    # -- counting sockets ------------------------------------------------------
    def local_counts(self, rooms: list[str]) -> dict[str, int]:
        """This process's sockets in each room, every namespace."""
        sio, namespaces = self.sockets.sio, self.sockets.namespaces()
        return {room: sum(len(list(sio.manager.get_participants(namespace, room))) for namespace in namespaces)
                for room in rooms}

    def count_sockets(self, session_ids: list[str]) -> dict[str, int]:
        """How many sockets each session has now, in every process.

        Without a message queue this process is all there is; with one, every
        process answers a census over it, and the answers that arrive within
        ``census_timeout`` seconds are counted (a process that is stopping may
        not answer in time).
        """
        if not session_ids:
            return {}
        rooms = {session_id: self.sockets.room(session_id) for session_id in session_ids}
        if not isinstance(self.sockets.sio.manager, LifecycleManager):
            counts = self.local_counts(list(rooms.values()))
        else:
            census = uuid.uuid4().hex
            counts = self._censuses[census] = dict.fromkeys(rooms.values(), 0)
            try:
                publish(self.sockets.sio, "census", {"id": census, "rooms": list(rooms.values())}, self.receive)
                gevent.sleep(self.census_timeout)
            finally:
                self._censuses.pop(census, None)
        return {session_id: counts[room] for session_id, room in rooms.items()}

    # -- expiry sweep ----------------------------------------------------
    def start_sweeper(self) -> None:
        if self.sweep_interval and (self._sweeper is None or self._sweeper.dead):
            self._sweeper = gevent.spawn(self._sweep_forever)

    def stop(self) -> None:
        """Stop the periodic sweep (it restarts with the next connection)."""
        if self._sweeper is not None:
            self._sweeper.kill()
            self._sweeper = None

    def _sweep_forever(self) -> None:
        assert self.sweep_interval
        while self.sockets.bound_sessions():
            gevent.sleep(self.sweep_interval)
            try:
                self.sweep()
            except WsgiSessionError as exc:  # the store is down: try again next time
                log.warning("session sweep skipped: %s", exc)

    def sweep(self) -> int:
        """End this process's sockets whose session expired or vanished; returns how many sessions."""
        manager = self.sockets.manager
        self.sockets.forget_touch()  # entries past the touch interval serve nothing
        ended = 0
        for session_id in self.sockets.bound_sessions():
            if manager.read(session_id) is not None:
                continue
            if manager.store.read(session_id) is not None:
                manager.end(session_id, reason="expired")  # tells every process
            else:
                self.receive("ended", {"room": self.sockets.room(session_id), "reason": "logout"})
            ended += 1
        return ended
