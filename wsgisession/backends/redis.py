"""The Redis store: a Beaker namespace manager over Redis that stores ``str`` values verbatim.

Keys are ``<prefix><namespace>:<key>``; values are UTF-8 text with an optional
expiry (``SET ... EX``). Nothing read from Redis is ever unpickled. Session-path
commands go through :mod:`wsgisession.redis_commands` (pipelined
across greenlets). A transaction takes a :class:`~wsgisession.locks.RedisLock`
and reads the session in the same round trip, stages its write, and writes it
in the round trip that releases the lock: an atomic update costs two round
trips, and a holder whose lock expired writes nothing.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

import redis
from beaker.container import NamespaceManager

from ..locks import RedisLock
from .base import KEY, Backend, Transaction
from ..redis_commands import commands_for

log = logging.getLogger(__name__)

_clients: dict[tuple[str, float], redis.Redis[bytes]] = {}


def client_for(url: str, *, socket_timeout: float = 5.0) -> redis.Redis[bytes]:
    """One shared connection pool per URL and timeout."""
    client = _clients.get((url, socket_timeout))
    if client is None:
        client = _clients[(url, socket_timeout)] = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
    return client


class RedisNamespaceManager(NamespaceManager):  # type: ignore[misc]
    """Stores ``str`` values in Redis keys; never unpickles."""

    def __init__(
        self,
        namespace: str,
        url: str | redis.Redis[bytes] = "redis://127.0.0.1:6379/0",
        prefix: str = "wsgisession:",
        socket_timeout: float = 5.0,
        **_: Any,
    ) -> None:
        super().__init__(namespace)
        self.client = url if isinstance(url, redis.Redis) else client_for(url, socket_timeout=float(socket_timeout))
        self.commands = commands_for(self.client)  # GET, SET and DEL: the session path
        self.prefix = prefix

    def key(self, key: str) -> str:
        return f"{self.prefix}{self.namespace}:{key}"

    def __getitem__(self, key: str) -> str:
        value = self.commands.execute("GET", self.key(key))
        if value is None:
            raise KeyError(key)
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:  # not ours (a planted pickle?): no session, never unpickled
            digest = hashlib.sha256(self.namespace.encode("utf-8")).hexdigest()[:12]
            log.warning("ignoring a session record that is not UTF-8 text (namespace %s)", digest)
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return bool(self.client.exists(self.key(str(key))))

    def has_key(self, key: str) -> bool:
        return key in self

    def set_value(self, key: str, value: str, expiretime: int | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError("the wsgisession Redis backend stores str values only")
        if expiretime:
            self.commands.execute("SET", self.key(key), value.encode("utf-8"), "EX", int(expiretime))
        else:
            self.commands.execute("SET", self.key(key), value.encode("utf-8"))

    def __setitem__(self, key: str, value: str) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.commands.execute("DEL", self.key(key)):
            raise KeyError(key)

    def do_remove(self) -> None:
        keys = list(self.client.scan_iter(match=self.key("*")))
        if keys:
            self.client.delete(*keys)

    def keys(self) -> list[str]:
        start = len(self.key(""))
        return [bytes(k).decode()[start:] for k in self.client.scan_iter(match=self.key("*"))]


def _text(value: object) -> str | None:
    """A value read from Redis as text; ``None`` if missing or not UTF-8."""
    if not isinstance(value, bytes):
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


class RedisBackend(Backend):
    """The Redis store at ``url``: the managers share one client; locks are Redis keys with a TTL."""

    name = "redis"
    expires = True
    faults = (OSError, redis.RedisError)

    def __init__(self, *, url: str, lock_ttl: float = 5.0, socket_timeout: float = 5.0, **options: Any) -> None:
        self.client = client_for(url, socket_timeout=float(socket_timeout))
        super().__init__(RedisNamespaceManager, url=self.client, **options)  # the managers share this client
        self.lock_ttl = lock_ttl

    def remove(self, key: str) -> None:
        try:
            del self.manager(key)[KEY]  # one key: do_remove() would SCAN the whole keyspace
        except KeyError:
            pass
        except self.faults as exc:
            raise self.fault(exc) from exc

    def begin(self, key: str, timeout: float) -> Transaction:
        data_key = self.manager(key).key(KEY)
        lock = RedisLock(self.client, f"wsgisession-lock:{key}", ttl=self.lock_ttl)
        try:
            value = lock.acquire(timeout, read=data_key)  # the read rides along in the same write
        except self.faults as exc:
            raise self.fault(exc) from exc
        return _Staged(self, key, data_key, lock, _text(value))


class _Staged(Transaction):
    """A Redis transaction: its write waits for the release of the lock, which makes it, if still ours."""

    __slots__ = ("data_key", "lock", "staged")

    def __init__(self, backend: RedisBackend, key: str, data_key: str, lock: RedisLock, text: str | None) -> None:
        super().__init__(backend, key, text)  # ``change`` stays unused: the write rides on the release
        self.data_key = data_key
        self.lock = lock
        self.staged: tuple[str, str, str, str] | None = None

    def write(self, text: str, ttl: int | None = None) -> None:
        self.staged = ("set", self.data_key, text, "" if ttl is None else str(int(ttl)))
        self.text = text

    def remove(self) -> None:
        self.staged = ("del", self.data_key, "", "")
        self.text = None

    def commit(self) -> None:
        staged, self.staged = self.staged, None
        try:
            self.lock.release(write=staged)
        except self.backend.faults as exc:
            raise self.backend.fault(exc) from exc
