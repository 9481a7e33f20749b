"""Redis clients for the store, from a URL and typed options: one client per URL and options, shared.

Every form a managed Redis comes in::

    redis://[user:password@]host:port/db          plain TCP
    rediss://[user:password@]host:port/db         TLS (ssl_cert_reqs, ssl_ca_certs ... below)
    unix://[user:password@]/path/to/redis.sock?db=0
    redis+sentinel://[user:password@]host1:port1,host2:port2/db/service_name
    redis://host:port with cluster=True            Redis Cluster (any node; the others are found)

The Sentinel form is python-socketio's (5.13+), so one ``REDIS_URL`` serves the
store and ``socketio.message_queue``; the URL's password is the primary's. Sentinels
that ask for one of their own (``requirepass`` in sentinel.conf, as Bitnami's chart
sets by default) get ``sentinel_password`` (and ``sentinel_username``), and
``sentinel_tls`` reaches the sentinels and the primary over TLS (the ``ssl_*``
options for both): the store's and the queue's alike. A Cluster's keys are routed by
:mod:`wsgisession.redis_commands`: a session keeps all of its keys in one slot
(one hash tag, :func:`session_key`).

    client = client_for("rediss://cache.example:6380/0", RedisSettings(ssl_ca_certs="/etc/ssl/redis-ca.pem"))

Anything wrong with the URL or the options is a
:class:`~wsgisession.errors.ConfigurationError` that names the INI key; the
password never appears in it (:func:`safe_url`). The client is made at once
and connects on first use, so a store down at start-up is
:class:`~wsgisession.errors.StoreUnavailable` until it answers (a Cluster's
client is made on first use for the same reason, :class:`LazyCluster`).
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Union
from urllib.parse import unquote, urlsplit

import redis
import redis.cluster
import redis.sentinel

from .config import safe_url
from .errors import ConfigurationError

URL_KEY = "beaker.session.url"

Client = Union["redis.Redis[bytes]", "LazyCluster"]

_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


@dataclass(frozen=True)
class RedisSettings:
    """The Redis store's options (INI: ``wsgisession.redis_<name>``)."""

    #: every key of a session starts with it: ``<prefix>{<id>}:session``, ``<prefix>{<id>}:lock``
    prefix: str = "wsgisession:"
    #: seconds a command waits for its reply
    socket_timeout: float = 5.0
    #: seconds a connection (or a Sentinel's answer) may take
    connect_timeout: float = 5.0
    #: times a session read that failed on a connection error is tried again (writes never are)
    read_retries: int = 1
    #: seconds before the first retry (doubled for each next one)
    retry_backoff: float = 0.05
    #: ``url`` names one node of a Redis Cluster
    cluster: bool = False
    #: TLS (``rediss://``): ``required`` (the default), ``optional`` or ``none``
    ssl_cert_reqs: str | None = None
    #: TLS: the CA certificates (PEM) that sign the server's certificate
    ssl_ca_certs: str | None = None
    #: TLS: a client certificate and its key (PEM), for servers that ask for one
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: Sentinel: the sentinels' own user and password (a ``redis+sentinel://`` URL's are the primary's)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    #: Sentinel: TLS to the sentinels and to the primary they name (the ``ssl_*`` options above for both)
    sentinel_tls: bool = False

    def __post_init__(self) -> None:
        prefix = self.prefix
        if not prefix or any(c in prefix for c in "{} \t\r\n*?[]\\"):
            raise ConfigurationError(
                f"wsgisession.redis_prefix = {prefix!r}: give a non-empty prefix without braces, spaces or "
                "glob characters (such as 'wsgisession:'): the session id is the key's hash tag",
                key="wsgisession.redis_prefix", value=prefix)
        for name in ("socket_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"wsgisession.redis_{name} must be more than 0 seconds",
                                         key=f"wsgisession.redis_{name}", value=getattr(self, name))
        if self.read_retries < 0 or self.retry_backoff < 0:
            key = "read_retries" if self.read_retries < 0 else "retry_backoff"
            raise ConfigurationError(f"wsgisession.redis_{key} cannot be negative",
                                     key=f"wsgisession.redis_{key}", value=getattr(self, key))
        if self.ssl_cert_reqs is not None and self.ssl_cert_reqs not in _CERT_REQS:
            raise ConfigurationError(
                f"wsgisession.redis_ssl_cert_reqs = {self.ssl_cert_reqs!r}: expected required, optional or none",
                key="wsgisession.redis_ssl_cert_reqs", value=self.ssl_cert_reqs)

    def tls(self) -> dict[str, Any]:
        """The TLS options given, as redis-py's keyword arguments."""
        options: dict[str, Any] = {}
        if self.ssl_cert_reqs is not None:
            options["ssl_cert_reqs"] = _CERT_REQS[self.ssl_cert_reqs]
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return options

    def sentinel_auth(self) -> dict[str, Any]:
        """The sentinels' credentials given, as redis-py's keyword arguments (for ``sentinel_kwargs``)."""
        auth = {"username": self.sentinel_username, "password": self.sentinel_password}
        return {name: value for name, value in auth.items() if value}

    def sentinel_options(self) -> dict[str, Any]:
        """redis-py's keyword arguments of a ``Sentinel`` beyond the URL's: ``sentinel_kwargs`` (the sentinels'
        credentials and TLS) and, with ``sentinel_tls``, the primary's TLS."""
        tls = {"ssl": True, **self.tls()} if self.sentinel_tls else {}
        return {"sentinel_kwargs": {**self.sentinel_auth(), **tls}, **tls}


def session_key(prefix: str, session_id: str, name: str) -> str:
    """A session's key: ``<prefix>{<id>}:<name>``; the id is the hash tag, so a Cluster keeps them in one slot."""
    return f"{prefix}{{{session_id}}}:{name}"


def _refuse(url: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"{URL_KEY} = {safe_url(url)}: {why}", key=URL_KEY, value=safe_url(url))


class LazyCluster:
    """A ``RedisCluster`` made on first use: made at once, it would need the cluster up at start-up."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self._options = options
        self._cluster: redis.cluster.RedisCluster[bytes] | None = None

    def get(self) -> redis.cluster.RedisCluster[bytes]:
        """The cluster client (its first call asks a node for the slots: ``redis.RedisError`` if none answers)."""
        if self._cluster is None:
            self._cluster = redis.cluster.RedisCluster.from_url(self.url, **self._options)
        return self._cluster


_clients: dict[tuple[str, RedisSettings], Client] = {}


def client_for(url: str, settings: RedisSettings | None = None) -> Client:
    """The shared client of ``url`` with ``settings`` (made on the first call)."""
    settings = settings or RedisSettings()
    client = _clients.get((url, settings))
    if client is None:
        client = _clients[(url, settings)] = make_client(url, settings)
    return client


def make_client(url: str, settings: RedisSettings) -> Client:
    """A new client of ``url``: a ``redis.Redis`` (also for Sentinel), or a :class:`LazyCluster`."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("redis", "rediss", "unix", "redis+sentinel"):
        raise _refuse(url, f"unsupported scheme {scheme + '://' if scheme else '(none)'} "
                           "(redis://, rediss://, unix:// or redis+sentinel://)")
    tls = settings.tls()
    if tls and scheme != "rediss" and not (settings.sentinel_tls and scheme == "redis+sentinel"):
        raise _refuse(url, "the wsgisession.redis_ssl_* options need a rediss:// URL "
                           "(or redis+sentinel:// with wsgisession.redis_sentinel_tls = true)")
    if settings.cluster and scheme not in ("redis", "rediss"):
        raise _refuse(url, "a Redis Cluster is reached by redis:// or rediss:// (one of its nodes)")
    timeouts: dict[str, Any] = {"socket_timeout": settings.socket_timeout,
                                "socket_connect_timeout": settings.connect_timeout}
    if scheme == "redis+sentinel":
        return _sentinel_client(url, timeouts, settings.sentinel_options())
    try:
        port = urlsplit(url).port
    except ValueError as exc:
        raise _refuse(url, str(exc)) from None
    if scheme != "unix" and port is None and not urlsplit(url).hostname:
        raise _refuse(url, "no host")
    database = urlsplit(url).path.strip("/")
    if scheme != "unix" and database and not database.isdigit():
        raise _refuse(url, f"the database {database!r} is not a number")  # redis-py would use 0
    if settings.cluster:
        if database not in ("", "0"):
            raise _refuse(url, "a Redis Cluster has database 0 only")
        return LazyCluster(url, {**timeouts, **tls})
    try:
        client: redis.Redis[bytes] = redis.Redis.from_url(url, **timeouts, **tls)
    except ValueError as exc:  # redis-py: a query option or database that does not parse
        raise _refuse(url, str(exc)) from None
    return client


def sentinel_refusal(exc: BaseException, *, password_given: bool) -> str | None:
    """Why the sentinels refused to name the primary, if they refused our credentials; else ``None``.

    redis-py says "No master found" with every sentinel's error in it: the sentinels
    are reachable, and ask for a password (``requirepass`` in sentinel.conf).
    """
    if not isinstance(exc, redis.sentinel.MasterNotFoundError) or "AuthenticationError" not in str(exc):
        return None
    if password_given:
        return ("the sentinels refused wsgisession.redis_sentinel_password (and wsgisession.redis_sentinel_username, "
                "if given): give their requirepass, not the primary's")
    return ("the sentinels ask for a password of their own (requirepass in sentinel.conf): "
            "give it as wsgisession.redis_sentinel_password (the URL's password is the primary's)")


def _sentinel_client(url: str, timeouts: dict[str, Any], options: dict[str, Any]) -> redis.Redis[bytes]:
    """The primary of a ``redis+sentinel://`` URL, found (and found again after a failover) by asking the sentinels.

    ``options``: :meth:`RedisSettings.sentinel_options` (the sentinels' own credentials, TLS).
    """
    parts = urlsplit(url)
    sentinels: list[tuple[str, int]] = []
    for host_port in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise _refuse(url, f"{host_port!r} is not host:port (give each sentinel as host:port, comma separated)")
        sentinels.append((host.strip("[]"), int(port)))
    path = parts.path.split("/")[1:]
    if len(path) < 2 or not path[0].isdigit() or not path[1]:
        raise _refuse(url, "give the database and the service name: redis+sentinel://host:port,.../0/mymaster")
    auth: dict[str, Any] = {}
    if parts.username:
        auth["username"] = unquote(parts.username)
    if parts.password:
        auth["password"] = unquote(parts.password)
    primary = {name: value for name, value in options.items() if name != "sentinel_kwargs"}
    sentinel = redis.sentinel.Sentinel(sentinels, sentinel_kwargs={**timeouts, **options["sentinel_kwargs"]},
                                       db=int(path[0]), **timeouts, **auth, **primary)
    client: redis.Redis[bytes] = sentinel.master_for(path[1])
    return client
