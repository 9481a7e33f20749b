"""fanout: lifecycle messages ride python-socketio's Redis queue but never reach clients."""
from __future__ import annotations

from typing import Any

import pytest
import socketio

from wsgisession.fanout import INTERNAL_NAMESPACE, LifecycleRedisManager, publish


def test_internal_messages_go_to_the_receiver_not_to_clients() -> None:
    manager = LifecycleRedisManager("redis://127.0.0.1:1/0", write_only=True)
    got: list[tuple[str, dict[str, Any]]] = []
    manager.receiver = lambda event, payload: got.append((event, payload))
    manager._handle_emit({"method": "emit", "event": "ended", "data": [{"room": "r", "reason": "logout"}],
                          "namespace": INTERNAL_NAMESPACE, "room": None})
    assert got == [("ended", {"room": "r", "reason": "logout"})]


def test_without_a_queue_messages_stay_in_the_process() -> None:
    sio = socketio.Server(async_mode="gevent")
    got: list[str] = []
    publish(sio, "rotated", {"old": "a", "new": "b"}, lambda event, payload: got.append(event))
    assert got == ["rotated"]


@pytest.mark.redis
def test_with_the_queue_this_process_hears_its_own_message(redis_url: str) -> None:
    manager = LifecycleRedisManager(redis_url)
    sio = socketio.Server(async_mode="gevent", client_manager=manager)
    got: list[str] = []
    manager.receiver = lambda event, payload: got.append(event)
    publish(sio, "ended", {"room": "r", "reason": "logout"}, lambda event, payload: got.append("local " + event))
    assert got == ["ended"]
