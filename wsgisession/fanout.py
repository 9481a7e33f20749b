"""Session lifecycle messages to every process, over python-socketio's message queue.

When a session ends or changes id in one process, the sockets bound to it may
live in any worker or host. :class:`LifecycleRedisManager` is python-socketio's
``RedisManager`` with one addition: messages emitted to the private namespace
:data:`INTERNAL_NAMESPACE` are never delivered to clients; every process
(this one included) hands them to its :class:`~wsgisession.realtime.SessionSockets`
instead. Configure it with ``socketio.message_queue = redis://...``.
"""
from __future__ import annotations

from typing import Any, Callable

import socketio

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


def publish(sio: socketio.Server, event: str, payload: dict[str, Any], local: Receiver) -> None:
    """Send a lifecycle message to every process (or just this one, without a queue)."""
    if isinstance(sio.manager, LifecycleRedisManager):
        sio.emit(event, payload, namespace=INTERNAL_NAMESPACE)
    else:
        local(event, payload)
