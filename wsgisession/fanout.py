"""Session lifecycle messages to every process, over python-socketio's message queue.

When a session ends or changes id in one process, the sockets bound to it may
live in any worker or host. :class:`LifecycleRedisManager` is python-socketio's
``RedisManager`` with one addition: messages emitted to the private namespace
:data:`INTERNAL_NAMESPACE` are never delivered to clients; every process
(this one included) hands them to its :class:`~wsgisession.realtime.SessionSockets`
instead. Configure it with ``socketio.message_queue = redis://...``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import socketio

log = logging.getLogger(__name__)

INTERNAL_NAMESPACE = "/wsgisession.internal"

Receiver = Callable[[str, dict[str, Any]], None]


class LifecycleRedisManager(socketio.RedisManager):  # type: ignore[misc]
    """A Redis message queue that also carries session lifecycle messages."""

    receiver: Receiver | None = None

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("namespace") != INTERNAL_NAMESPACE:
            super()._handle_emit(message)
            return
        data = message.get("data")
        payload = data[0] if isinstance(data, list) and data else {}
        if self.receiver is not None and isinstance(payload, dict):
            self.receiver(str(message.get("event")), payload)


def carry_lifecycle(manager: Any) -> None:
    """Make a server's own Redis queue (Flask-SocketIO's ``message_queue``) carry lifecycle messages too.

    A plain ``socketio.RedisManager`` becomes a :class:`LifecycleRedisManager`
    (a subclass that adds no state, only the private namespace's delivery); any
    other pub/sub queue carries emits but not session endings, and is logged.
    """
    if type(manager) is socketio.RedisManager:
        manager.__class__ = LifecycleRedisManager
    elif isinstance(manager, socketio.PubSubManager) and not isinstance(manager, LifecycleRedisManager):
        log.warning("the message queue %s carries emits but not session endings: a logout in one process "
                    "ends only that process's sockets (use a Redis queue)", type(manager).__name__)


def publish(sio: socketio.Server, event: str, payload: dict[str, Any], local: Receiver) -> None:
    """Send a lifecycle message to every process (or just this one, without a queue)."""
    if isinstance(sio.manager, LifecycleRedisManager):
        sio.emit(event, payload, namespace=INTERNAL_NAMESPACE)
    else:
        local(event, payload)
