from __future__ import annotations

import pytest

from wsgisession.config import from_settings
from wsgisession.errors import ConfigurationError


def test_beaker_ours_and_socketio_keys_are_typed() -> None:
    kwargs = from_settings({
        "beaker.session.secret": "s" * 40,
        "beaker.session.type": "ext:redis",
        "beaker.session.url": "redis://127.0.0.1:6379/0",
        "beaker.session.secure": "true",
        "beaker.session.httponly": "yes",
        "beaker.session.samesite": "strict",
        "beaker.session.timeout": "3600",
        "beaker.session.cookie_expires": "true",
        "wsgisession.absolute_timeout": "86400",
        "wsgisession.lock_timeout": "2.5",
        "wsgisession.allow_anonymous": "off",
        "wsgisession.allowed_origins": "https://a.example, https://b.example",
        "wsgisession.handlers": "pkg.mod:register\n    pkg.other:Chat",
        "wsgisession.fast_json": "false",
        "socketio.ping_interval": "10",
        "socketio.async_handlers": "false",
        "socketio.message_queue": "redis://127.0.0.1:6379/1",
        "unrelated.key": "ignored",
    })
    assert kwargs == {
        "secret": "s" * 40,
        "type": "ext:redis",
        "url": "redis://127.0.0.1:6379/0",
        "secure": True,
        "httponly": True,
        "samesite": "Strict",
        "timeout": 3600,
        "cookie_expires": True,
        "absolute_timeout": 86400,
        "lock_timeout": 2.5,
        "allow_anonymous": False,
        "allowed_origins": ["https://a.example", "https://b.example"],
        "handlers": ["pkg.mod:register", "pkg.other:Chat"],
        "fast_json": False,
        "socketio_options": {
            "ping_interval": 10.0,
            "async_handlers": False,
            "message_queue": "redis://127.0.0.1:6379/1",
        },
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("beaker.session.timeout", "soon"),
        ("beaker.session.secure", "maybe"),
        ("beaker.session.samesite", "sometimes"),
        ("beaker.session.cookie_expires", "tomorrow"),
        ("wsgisession.lock_timeout", "fast"),
        ("socketio.ping_interval", "often"),
    ],
)
def test_bad_values_name_the_key_and_value(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        from_settings({key: value})
    assert info.value.key == key and info.value.value == value
    assert key in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("t", True), ("yes", True), ("1", True), ("", True), ("none", True),
     ("false", False), ("False", False), ("f", False), ("off", False), ("0", False), ("300", 300)],
)
def test_cookie_expires_reads_beakers_spellings(value: str, expected: bool | int) -> None:
    # Beaker: true a browser-session cookie, false never expires (2038), else seconds
    assert from_settings({"beaker.session.cookie_expires": value}) == {"cookie_expires": expected}


@pytest.mark.parametrize(("value", "expected"), [("t", True), ("y", True), ("f", False), ("n", False)])
def test_booleans_read_beakers_spellings(value: str, expected: bool) -> None:
    assert from_settings({"beaker.session.auto": value}) == {"autosave": expected}


@pytest.mark.parametrize("key", ["wsgisession.colour", "socketio.pingInterval", "beaker.session.data_serializer"])
def test_unknown_keys_under_our_prefixes_are_errors(key: str) -> None:
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        from_settings({key: "x"})


def test_env_values_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SESSION_SECRET", "from-the-environment")
    assert from_settings({"beaker.session.secret": "env:TEST_SESSION_SECRET"}) == {"secret": "from-the-environment"}
    monkeypatch.delenv("TEST_SESSION_SECRET")
    with pytest.raises(ConfigurationError, match="TEST_SESSION_SECRET is not set"):
        from_settings({"beaker.session.secret": "env:TEST_SESSION_SECRET"})


def test_the_redis_store_keys_are_typed() -> None:
    kwargs = from_settings({
        "wsgisession.redis_prefix": "shop:",
        "wsgisession.redis_socket_timeout": "2",
        "wsgisession.redis_connect_timeout": "0.5",
        "wsgisession.redis_read_retries": "3",
        "wsgisession.redis_retry_backoff": "0.1",
        "wsgisession.redis_cluster": "yes",
        "wsgisession.redis_ssl_cert_reqs": "required",
        "wsgisession.redis_ssl_ca_certs": "/etc/ssl/redis-ca.pem",
        "wsgisession.redis_ssl_certfile": "/etc/ssl/app.pem",
        "wsgisession.redis_ssl_keyfile": "/etc/ssl/app.key",
    })
    assert kwargs == {
        "redis_prefix": "shop:", "redis_socket_timeout": 2.0, "redis_connect_timeout": 0.5, "redis_read_retries": 3,
        "redis_retry_backoff": 0.1, "redis_cluster": True, "redis_ssl_cert_reqs": "required",
        "redis_ssl_ca_certs": "/etc/ssl/redis-ca.pem", "redis_ssl_certfile": "/etc/ssl/app.pem",
        "redis_ssl_keyfile": "/etc/ssl/app.key",
    }


@pytest.mark.parametrize("key, value", [("wsgisession.redis_cluster", "maybe"),
                                        ("wsgisession.redis_read_retries", "twice"),
                                        ("wsgisession.redis_socket_timeout", "5s")])
def test_a_redis_value_that_does_not_parse_names_its_key(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=key) as caught:
        from_settings({key: value})
    assert caught.value.key == key


def test_a_bad_redis_prefix_in_an_ini_stops_make_app_naming_the_key() -> None:
    from tests.helpers import SECRET
    from wsgisession.app import make_app

    with pytest.raises(ConfigurationError, match="wsgisession.redis_prefix"):
        make_app(secret=SECRET, type="ext:redis", url="redis://127.0.0.1:1/0", redis_prefix="{app}")
