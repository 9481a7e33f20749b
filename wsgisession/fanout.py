"""Session lifecycle messages to every process, over python-socketio's message queue.

When a session ends or changes id in one process, the sockets bound to it may
live in any worker or host. Any python-socketio pub/sub manager (Redis, Kombu
on RabbitMQ, Kafka, ZeroMQ) carries them: :func:`lifecycle_class` makes a
subclass of its class in which messages emitted to the private namespace
:data:`INTERNAL_NAMESPACE` are never delivered to clients; every process (this
one included) hands them to its :class:`~wsgisession.realtime.SessionSockets`
instead. :func:`manager_for` picks the manager from the URL's scheme, as
Flask-SocketIO does, and checks at start-up that the queue can be reached;
:func:`carry_lifecycle` adapts a manager built elsewhere.
"""
from __future__ import annotations

import logging
from typing import Any, Callable
from urllib.parse import urlsplit

import socketio

from .config import safe_url as _safe
from .errors import ConfigurationError

log = logging.getLogger(__name__)

INTERNAL_NAMESPACE = "/wsgisession.internal"
KEY = "socketio.message_queue"

Receiver = Callable[[str, dict[str, Any]], None]


class LifecycleManager:
    """The lifecycle part of a pub/sub manager; :func:`lifecycle_class` mixes it in."""

    receiver: Receiver | None = None

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("namespace") != INTERNAL_NAMESPACE:
            super()._handle_emit(message)  # type: ignore[misc]
            return
        data = message.get("data")
        payload = data[0] if isinstance(data, list) and data else {}
        if self.receiver is not None and isinstance(payload, dict):
            self.receiver(str(message.get("event")), payload)


_classes: dict[type, type] = {}


def lifecycle_class(base: type) -> type:
    """``base`` (a ``socketio.PubSubManager`` subclass) that also carries lifecycle messages; one per base."""
    if issubclass(base, LifecycleManager):
        return base
    made = _classes.get(base)
    if made is None:
        made = _classes[base] = type("Lifecycle" + base.__name__, (LifecycleManager, base), {})
    return made


#: python-socketio's Redis manager with lifecycle messages (``socketio.message_queue = redis://...``)
LifecycleRedisManager: type[socketio.RedisManager] = lifecycle_class(socketio.RedisManager)

_REDIS = {"redis", "rediss", "unix", "redis+sentinel", "valkey", "valkeys", "valkey+sentinel"}
#: the schemes of a Redis (or Valkey) reached through its sentinels
SENTINEL_SCHEMES = frozenset({"redis+sentinel", "valkey+sentinel"})


def manager_for(
    url: str, *, channel: str = "socketio", check: bool = True, sentinel_options: dict[str, Any] | None = None,
) -> socketio.PubSubManager:
    """The pub/sub manager for a queue URL, as Flask-SocketIO picks it, carrying lifecycle messages.

    ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``: Redis; ``kafka://``:
    Kafka; ``zmq+tcp://``: ZeroMQ; any scheme Kombu knows (``amqp://``, ``amqps://`` ...):
    Kombu. An unknown scheme, a missing client library or (with ``check``) a queue
    that does not answer is a :class:`ConfigurationError` naming ``socketio.message_queue``.
    ``sentinel_options``: for a ``redis+sentinel://`` URL, redis-py's keyword arguments
    of its ``Sentinel`` (:meth:`wsgisession.redis_client.RedisSettings.sentinel_options`:
    the sentinels' own credentials, TLS); the URL's credentials are the primary's.
    """
    scheme = urlsplit(url).scheme.lower()
    base: type[socketio.PubSubManager]
    options: dict[str, Any] = {}
    if sentinel_options and scheme in SENTINEL_SCHEMES:
        options["redis_options"] = dict(sentinel_options)
    if scheme in _REDIS:
        base = socketio.RedisManager
    elif scheme == "kafka":
        base = socketio.KafkaManager
    elif scheme.startswith("zmq"):
        base = socketio.ZmqManager
    else:
        try:
            import kombu.transport
        except ImportError:
            raise ConfigurationError(f"{KEY} = {_safe(url)}: the {scheme or '(no scheme)'} queue needs Kombu "
                                     "(pip install kombu)", key=KEY, value=_safe(url)) from None
        try:
            kombu.transport.resolve_transport(scheme or None)
        except (KeyError, ValueError):
            raise ConfigurationError(
                f"{KEY} = {_safe(url)}: unsupported scheme {scheme!r} (redis://, rediss://, unix://, "
                "redis+sentinel://, amqp://, amqps://, kafka://, zmq+tcp://, or another Kombu transport)",
                key=KEY, value=_safe(url)) from None
        base = socketio.KombuManager
    try:
        manager: socketio.PubSubManager = lifecycle_class(base)(url, channel=channel, **options)
    except (RuntimeError, ValueError) as exc:  # python-socketio: a missing client library, a bad URL
        raise ConfigurationError(f"{KEY} = {_safe(url)}: {exc}", key=KEY, value=_safe(url)) from exc
    if check:
        given = bool(sentinel_options and sentinel_options.get("sentinel_kwargs", {}).get("password"))
        reach(manager, url, sentinel_password_given=given)
    return manager


def reach(manager: socketio.PubSubManager, url: str, *, sentinel_password_given: bool = False) -> None:
    """Fail at start-up, naming the key, if the queue does not answer (not a retry loop at the first publish).

    ``sentinel_password_given``: whether the sentinels were asked with a password (for the refusal's words).
    """
    try:
        if isinstance(manager, socketio.RedisManager):
            manager._redis_connect()
            manager.redis.ping()
        elif isinstance(manager, socketio.KombuManager):
            manager.publisher_connection.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # whatever the client library raises: say which key and why
        why = None
        if isinstance(manager, socketio.RedisManager):
            from .redis_client import sentinel_refusal  # redis is installed: python-socketio's manager uses it

            why = sentinel_refusal(exc, password_given=sentinel_password_given)
        raise ConfigurationError(f"{KEY} = {_safe(url)}: the message queue cannot be reached ({why or exc})",
                                 key=KEY, value=_safe(url)) from exc


def carry_lifecycle(manager: Any) -> None:
    """Make a pub/sub manager built elsewhere (Flask-SocketIO's, a ``client_manager``) carry lifecycle messages.

    Its class becomes the :func:`lifecycle_class` of it: a subclass that adds no
    state, only the private namespace's delivery. A manager that is not pub/sub
    (one process) needs nothing.
    """
    if isinstance(manager, socketio.PubSubManager) and not isinstance(manager, LifecycleManager):
        manager.__class__ = lifecycle_class(type(manager))


def publish(sio: socketio.Server, event: str, payload: dict[str, Any], local: Receiver) -> None:
    """Send a lifecycle message to every process (or just this one, without a queue)."""
    if isinstance(sio.manager, LifecycleManager):
        sio.emit(event, payload, namespace=INTERNAL_NAMESPACE)
    else:
        local(event, payload)
