"""The Redis store: a Beaker namespace manager over Redis that stores ``str`` values verbatim.

A session's keys are ``<prefix>{<id>}:session`` (its text, UTF-8, with an
optional expiry: ``SET ... EX``) and ``<prefix>{<id>}:lock`` (its lock): one
prefix, so one ACL pattern (``~wsgisession:*``) covers them, and one hash tag,
so a Redis Cluster keeps them in one slot (the lock's script touches both).
Nothing read from Redis is ever unpickled. The client comes from
:mod:`wsgisession.redis_client` (TLS, Unix sockets, ACL users, Sentinel,
Cluster); session-path commands go through :mod:`wsgisession.redis_commands`
(pipelined across greenlets). A transaction takes a
:class:`~wsgisession.locks.RedisLock` and reads the session in the same round
trip, stages its write, and writes it in the round trip that releases the
lock: an atomic update costs two round trips, and a holder whose lock expired
writes nothing. A session read that fails on a connection error is tried again
(``read_retries``, after ``retry_backoff``): it changes nothing; writes never are.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

import gevent
import redis
from beaker.container import NamespaceManager

from ..locks import RedisLock
from ..redis_client import LazyCluster, RedisSettings, client_for, sentinel_refusal, session_key
from ..redis_commands import commands_for
from .base import KEY, Backend, Transaction

log = logging.getLogger(__name__)

#: what a read may be tried again after: the command did not get an answer (a timeout is not: it may be slow)
_RETRIED = (redis.ConnectionError, ConnectionError)


def _plain(client: redis.Redis[bytes] | LazyCluster) -> Any:
    """The redis-py client itself (a cluster's is made on first use), for the commands off the session path."""
    return client.get() if isinstance(client, LazyCluster) else client


class RedisNamespaceManager(NamespaceManager):  # type: ignore[misc]
    """Stores ``str`` values in Redis keys; never unpickles."""

    def __init__(
        self,
        namespace: str,
        url: str | redis.Redis[bytes] | LazyCluster = "redis://127.0.0.1:6379/0",
        prefix: str = "wsgisession:",
        settings: RedisSettings | None = None,
        **_: Any,
    ) -> None:
        super().__init__(namespace)
        settings = settings or RedisSettings(prefix=prefix)
        self.client = client_for(url, settings) if isinstance(url, str) else url
        self.commands = commands_for(self.client)  # GET, SET and DEL: the session path
        self.prefix = settings.prefix

    def key(self, key: str) -> str:
        return session_key(self.prefix, self.namespace, key)

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
        return bool(self.commands.execute("EXISTS", self.key(str(key))))

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
        for key in self.keys():  # one slot: the namespace is the hash tag
            self.commands.execute("DEL", self.key(key))

    def keys(self) -> list[str]:
        start = len(self.key(""))
        return [bytes(k).decode()[start:] for k in _plain(self.client).scan_iter(match=self.key("*"))]


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
    faults = (OSError, redis.RedisError, redis.exceptions.RedisClusterException)

    def __init__(self, *, url: str, lock_ttl: float = 5.0, settings: RedisSettings | None = None,
                 **options: Any) -> None:
        self.settings = settings = settings or RedisSettings()
        self.client = client_for(url, settings)
        # the managers share this client
        super().__init__(RedisNamespaceManager, url=self.client, settings=settings, **options)
        self.lock_ttl = lock_ttl

    def explain(self, exc: BaseException) -> object:
        return sentinel_refusal(exc, password_given=bool(self.settings.sentinel_password)) or exc

    def read(self, key: str) -> str | None:
        """The stored text; a read the store did not answer is tried again ``read_retries`` times."""
        delay = self.settings.retry_backoff
        for _ in range(self.settings.read_retries):
            try:
                return self._read_once(key)
            except _RETRIED as exc:
                log.info("a session read got no answer (%s); trying again in %.3gs", exc, delay)
                gevent.sleep(delay)
                delay *= 2
        return super().read(key)  # the last try: a fault is StoreUnavailable

    def _read_once(self, key: str) -> str | None:
        """Like Backend.read, but a connection error is raised as it is (for :meth:`read` to try again)."""
        try:
            return str(self.manager(key)[KEY])
        except KeyError:
            return None

    def remove(self, key: str) -> None:
        try:
            del self.manager(key)[KEY]  # one key: do_remove() would SCAN the whole keyspace
        except KeyError:
            pass
        except self.faults as exc:
            raise self.fault(exc) from exc

    def begin(self, key: str, timeout: float) -> Transaction:
        data_key = self.manager(key).key(KEY)
        lock = RedisLock(self.client, session_key(self.settings.prefix, key, "lock"), ttl=self.lock_ttl)
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
