"""fanout: lifecycle messages ride any python-socketio pub/sub queue but never reach clients."""
from __future__ import annotations

from typing import Any

import pytest
import socketio

from wsgisession import ConfigurationError, make_app
from wsgisession.fanout import (
    INTERNAL_NAMESPACE, LifecycleManager, LifecycleRedisManager, carry_lifecycle, lifecycle_class, manager_for, publish,
)

from tests.helpers import SECRET


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



@pytest.mark.redis
def test_the_url_scheme_picks_the_manager_as_flask_socketio_does(redis_url: str) -> None:
    manager = manager_for(redis_url)
    assert isinstance(manager, socketio.RedisManager) and isinstance(manager, LifecycleManager)
    kombu = manager_for("memory://", check=False)  # a Kombu transport
    assert isinstance(kombu, socketio.KombuManager) and isinstance(kombu, LifecycleManager)
    assert lifecycle_class(socketio.KombuManager) is type(kombu)  # one class per base


@pytest.mark.parametrize(("url", "says"), [
    ("http://127.0.0.1:1/", "unsupported scheme 'http'"),
    ("nats://127.0.0.1:1", "unsupported scheme 'nats'"),
    ("redis://127.0.0.1:1/0", "the message queue cannot be reached"),
    ("amqp://guest:hunter2@127.0.0.1:1//", "the message queue cannot be reached"),
    ("kafka://127.0.0.1:1", "socketio.message_queue = kafka://127.0.0.1:1: "),
])
def test_a_queue_that_cannot_work_is_a_configuration_error_naming_the_key(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_app(secret=SECRET, type="memory", socketio_options={"message_queue": url})
    assert refused.value.key == "socketio.message_queue"
    assert says in str(refused.value)
    assert "hunter2" not in str(refused.value)  # the password is never shown


def test_a_client_manager_passed_from_python_carries_endings_too() -> None:
    manager = socketio.KombuManager("memory://", write_only=True)
    app = make_app(secret=SECRET, type="memory", socketio_options={"client_manager": manager})
    assert app.sio.manager is manager and isinstance(manager, LifecycleManager)
    assert manager.receiver is not None  # the lifecycle listens to it
    carry_lifecycle(manager)  # twice: nothing changes
    assert type(manager).__mro__.count(LifecycleManager) == 1
    with pytest.raises(ConfigurationError, match="not both"):
        make_app(secret=SECRET, type="memory", socketio_options={"client_manager": manager,
                                                                 "message_queue": "memory://"})
