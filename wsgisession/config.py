"""INI / PasteDeploy settings -> the typed keyword arguments of ``make_app``.

Three prefixes, each key parsed to its type with an error that names it:

``beaker.session.*``
    Beaker's own keys: ``secret``, ``type``, ``data_dir``, ``url``, ``key``,
    ``cookie_path``, ``cookie_domain``, ``secure``, ``httponly``, ``samesite``,
    ``timeout``, ``cookie_expires``, ``auto``.
``wsgisession.*``
    Ours: see :data:`OURS`.
``socketio.*``
    python-socketio's (and Engine.IO's) server options: see :data:`SOCKETIO`.

A value ``env:NAME`` reads the environment variable ``NAME`` (for secrets).
An unknown key under one of these prefixes is an error, never ignored.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .errors import ConfigurationError

_TRUE = {"true", "yes", "on", "1", "t", "y"}  # Beaker's spellings (beaker.converters.asbool)
_FALSE = {"false", "no", "off", "0", "f", "n"}


def as_bool(value: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("expected true or false")


def as_list(value: str) -> list[str]:
    return [item for item in value.replace(",", " ").split() if item]


def as_optional_int(value: str) -> int | None:
    return None if value.strip().lower() in ("", "none") else int(value)


def as_samesite(value: str) -> str | None:
    word = value.strip().capitalize()
    if word in ("Lax", "Strict", "None"):
        return word
    if word in ("", "False", "Off"):
        return None
    raise ValueError("expected Lax, Strict or None")


def as_cookie_expires(value: str) -> bool | int:
    """Beaker's ``cookie_expires``: true (a browser-session cookie), false (never expires), or seconds."""
    word = value.strip().lower()
    if word in ("", "none"):
        return True
    if word.isdigit() and word not in ("0", "1"):  # Beaker reads "1" and "0" as true and false too
        return int(word)
    try:
        return as_bool(word)
    except ValueError:
        raise ValueError("expected true (a browser-session cookie), false (never expires) or seconds") from None


#: beaker.session.<key> -> (make_app argument, parser)
BEAKER: dict[str, tuple[str, Callable[[str], Any]]] = {
    "secret": ("secret", str),
    "type": ("type", str),
    "data_dir": ("data_dir", str),
    "url": ("url", str),
    "key": ("key", str),
    "cookie_path": ("cookie_path", str),
    "cookie_domain": ("cookie_domain", str),
    "secure": ("secure", as_bool),
    "httponly": ("httponly", as_bool),
    "samesite": ("samesite", as_samesite),
    "timeout": ("timeout", as_optional_int),
    "cookie_expires": ("cookie_expires", as_cookie_expires),
    "auto": ("autosave", as_bool),
}

#: wsgisession.<key> -> (make_app argument, parser)
OURS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "absolute_timeout": ("absolute_timeout", as_optional_int),
    "touch_interval": ("touch_interval", int),
    "autosave": ("autosave", as_bool),
    "lock_timeout": ("lock_timeout", float),
    "lock_ttl": ("lock_ttl", float),
    "locking": ("locking", as_bool),
    "allow_anonymous": ("allow_anonymous", as_bool),
    "allowed_origins": ("allowed_origins", as_list),
    "allow_missing_origin": ("allow_missing_origin", as_bool),
    "cookie_exchange_path": ("cookie_exchange_path", str),
    "cookie_token_ttl": ("cookie_token_ttl", int),
    "client_js_path": ("client_js_path", str),
    "socketio_path": ("socketio_path", str),
    "handlers": ("handlers", as_list),
    "max_message_size": ("max_message_size", int),
    "sweep_interval": ("sweep_interval", float),
    "user_key": ("user_key", str),
    "census_timeout": ("census_timeout", float),
    "fast_json": ("fast_json", as_bool),
    "redis_prefix": ("redis_prefix", str),
    "redis_socket_timeout": ("redis_socket_timeout", float),
    "redis_connect_timeout": ("redis_connect_timeout", float),
    "redis_read_retries": ("redis_read_retries", int),
    "redis_retry_backoff": ("redis_retry_backoff", float),
    "redis_cluster": ("redis_cluster", as_bool),
    "redis_ssl_cert_reqs": ("redis_ssl_cert_reqs", str),
    "redis_ssl_ca_certs": ("redis_ssl_ca_certs", str),
    "redis_ssl_certfile": ("redis_ssl_certfile", str),
    "redis_ssl_keyfile": ("redis_ssl_keyfile", str),
    "redis_sentinel_username": ("redis_sentinel_username", str),
    "redis_sentinel_password": ("redis_sentinel_password", str),
    "redis_sentinel_tls": ("redis_sentinel_tls", as_bool),
}

#: socketio.<key> -> parser (passed to socketio.Server as keyword arguments)
SOCKETIO: dict[str, Callable[[str], Any]] = {
    "ping_interval": float,
    "ping_timeout": float,
    "max_http_buffer_size": int,
    "async_handlers": as_bool,
    "always_connect": as_bool,
    "transports": as_list,
    "message_queue": str,
    "channel": str,
    "logger": as_bool,
    "engineio_logger": as_bool,
    "http_compression": as_bool,
    "compression_threshold": int,
}


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _value(name: str, raw: str) -> str:
    if raw.startswith("env:"):
        var = raw[4:]
        if var not in os.environ:
            raise ConfigurationError(f"{name}: the environment variable {var} is not set", key=name, value=raw)
        return os.environ[var]
    return raw


def _parse(name: str, raw: str, parser: Callable[[str], Any]) -> Any:
    value = _value(name, raw)
    try:
        return parser(value)
    except ValueError as exc:
        raise ConfigurationError(f"{name} = {raw!r}: {exc}", key=name, value=raw) from exc


def from_settings(settings: Mapping[str, str]) -> dict[str, Any]:
    """Turn an INI section's settings into ``make_app`` keyword arguments."""
    kwargs: dict[str, Any] = {}
    socketio_options: dict[str, Any] = {}
    for name, raw in settings.items():
        prefix, _, key = name.partition(".")
        if name.startswith("beaker.session."):
            key = name[len("beaker.session.") :]
            if key not in BEAKER:
                raise ConfigurationError(
                    f"{name} is not supported by wsgisession (known: {', '.join(sorted(BEAKER))})", key=name
                )
            arg, parser = BEAKER[key]
            kwargs[arg] = _parse(name, raw, parser)
        elif prefix == "wsgisession":
            if key not in OURS:
                raise ConfigurationError(f"unknown option {name} (known: {', '.join(sorted(OURS))})", key=name)
            arg, parser = OURS[key]
            kwargs[arg] = _parse(name, raw, parser)
        elif prefix == "socketio":
            if key not in SOCKETIO:
                raise ConfigurationError(f"unknown option {name} (known: {', '.join(sorted(SOCKETIO))})", key=name)
            socketio_options[key] = _parse(name, raw, SOCKETIO[key])
    if socketio_options:
        kwargs["socketio_options"] = socketio_options
    return kwargs
