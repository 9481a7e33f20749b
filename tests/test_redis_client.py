"""Redis clients from a URL and RedisSettings: each form, each refusal (real redis-server where a server answers)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import gevent
import pytest

from tests.helpers import SECRET
from tests.servers import Redis, make_certificates
from wsgisession import make_app
from wsgisession.errors import ConfigurationError, StoreUnavailable
from wsgisession.ids import new_session_id
from wsgisession.redis_client import LazyCluster, RedisSettings, client_for, make_client, session_key
from wsgisession.store import Store

pytestmark = pytest.mark.redis


def test_a_sessions_keys_share_the_prefix_and_the_id_as_hash_tag() -> None:
    sid = new_session_id()
    assert session_key("wsgisession:", sid, "session") == f"wsgisession:{{{sid}}}:session"
    assert session_key("shop:", sid, "lock") == f"shop:{{{sid}}}:lock"


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:6379/0", "unsupported scheme http://"),
    ("127.0.0.1:6379", "unsupported scheme"),
    ("redis://127.0.0.1:port/0", "Port could not be cast"),
    ("redis://127.0.0.1:6379/zero", "the database .zero. is not a number"),
    ("redis+sentinel://127.0.0.1:26379/0", "give the database and the service name"),
    ("redis+sentinel://127.0.0.1/0/mymaster", "is not host:port"),
    ("redis+sentinel://a:1,b/0/mymaster", "'b' is not host:port"),
    ("redis://127.0.0.1:6379/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
    ("unix:///run/redis.sock?db=zero", "Invalid value for 'db'"),
])
def test_a_url_that_cannot_work_is_refused_naming_the_key(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        make_client(url, RedisSettings())
    assert caught.value.key == "beaker.session.url"


def test_the_password_never_appears_in_a_refusal() -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_client("redis+sentinel://app:hunter2hunter2@127.0.0.1/0/x", RedisSettings())
    assert "hunter2" not in str(caught.value) and "app:***@" in str(caught.value)
    assert "hunter2" not in str(caught.value.value)


def test_the_sentinels_password_never_appears_in_the_settings_repr() -> None:
    settings = RedisSettings(sentinel_username="watcher", sentinel_password="hunter2hunter2")
    assert "hunter2" not in repr(settings) and "watcher" in repr(settings)
    assert settings.sentinel_auth() == {"username": "watcher", "password": "hunter2hunter2"}
    assert RedisSettings().sentinel_auth() == {}


@pytest.mark.parametrize("settings", [
    {"type": "ext:redis", "url": "redis://127.0.0.1:6379/0"},
    {"type": "ext:redis", "url": "redis://127.0.0.1:6379/0", "socketio_options": {"message_queue": "redis://127.0.0.1/0"}},
    {"type": "sqlite", "socketio_options": {"message_queue": "amqp://127.0.0.1//"}},
])
def test_sentinel_credentials_without_a_sentinel_url_are_refused_naming_the_key(
    settings: dict[str, Any], tmp_path: Path,
) -> None:
    if settings["type"] == "sqlite":
        settings = {**settings, "data_dir": str(tmp_path)}
    for given, key in (({"redis_sentinel_password": "pw"}, "wsgisession.redis_sentinel_password"),
                       ({"redis_sentinel_username": "watcher"}, "wsgisession.redis_sentinel_username"),
                       ({"redis_sentinel_tls": True}, "wsgisession.redis_sentinel_tls")):
        with pytest.raises(ConfigurationError, match="needs a redis\\+sentinel:// URL") as caught:
            make_app(lambda environ, start_response: [], secret=SECRET, **settings, **given)
        assert caught.value.key == key and "pw" not in str(caught.value)


@pytest.mark.parametrize("url, settings, message", [
    ("redis://127.0.0.1:6379/0", {"ssl_ca_certs": "/ca.pem"}, "need a rediss:// URL"),
    ("unix:///run/redis.sock", {"ssl_cert_reqs": "none"}, "need a rediss:// URL"),
    ("unix:///run/redis.sock", {"cluster": True}, "Redis Cluster is reached by redis:// or rediss://"),
    ("redis+sentinel://127.0.0.1:26379/0/m", {"cluster": True}, "Redis Cluster is reached by"),
    ("redis+sentinel://127.0.0.1:26379/0/m", {"ssl_ca_certs": "/ca.pem"}, "with wsgisession.redis_sentinel_tls = true"),
    ("redis://127.0.0.1:6379/0", {"ssl_ca_certs": "/ca.pem", "sentinel_tls": True}, "need a rediss:// URL"),
    ("redis://127.0.0.1:7000/3", {"cluster": True}, "database 0 only"),
])
def test_options_that_do_not_fit_the_url_are_refused(url: str, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_client(url, RedisSettings(**settings))


@pytest.mark.parametrize("settings, key", [
    ({"prefix": ""}, "wsgisession.redis_prefix"),
    ({"prefix": "app{x}:"}, "wsgisession.redis_prefix"),
    ({"prefix": "app*"}, "wsgisession.redis_prefix"),
    ({"prefix": "my app:"}, "wsgisession.redis_prefix"),
    ({"socket_timeout": 0}, "wsgisession.redis_socket_timeout"),
    ({"connect_timeout": -1}, "wsgisession.redis_connect_timeout"),
    ({"read_retries": -1}, "wsgisession.redis_read_retries"),
    ({"retry_backoff": -0.1}, "wsgisession.redis_retry_backoff"),
    ({"ssl_cert_reqs": "always"}, "wsgisession.redis_ssl_cert_reqs"),
])
def test_bad_settings_are_refused_naming_the_ini_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisSettings(**settings)
    assert caught.value.key == key and key in str(caught.value)


def test_one_client_per_url_and_settings() -> None:
    url = "redis://127.0.0.1:1/0"
    assert client_for(url) is client_for(url, RedisSettings())
    assert client_for(url, RedisSettings(socket_timeout=1.0)) is not client_for(url)


def test_a_cluster_client_is_made_on_first_use_and_a_cluster_that_is_down_is_store_unavailable(
    tmp_path: Path,
) -> None:
    client = make_client("redis://127.0.0.1:1/0", RedisSettings(cluster=True))
    assert isinstance(client, LazyCluster)  # made without asking anybody: the app starts with the store down
    store = Store(type="ext:redis", url="redis://127.0.0.1:1/0",
                  redis=RedisSettings(cluster=True, connect_timeout=0.2, read_retries=0))
    with pytest.raises(StoreUnavailable):
        store.read(new_session_id())


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Redis, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    certs = make_certificates(directory / "certs")
    server = Redis(directory, tls=certs)
    server.start()
    yield server, certs.ca
    server.stop()


def test_tls_checks_the_servers_certificate_against_the_configured_ca(tls_redis: tuple[Redis, Path]) -> None:
    server, ca = tls_redis
    sid = new_session_id()
    trusting = Store(type="ext:redis", url=server.url, redis=RedisSettings(ssl_ca_certs=str(ca)))
    trusting.write(sid, "{}")
    assert trusting.read(sid) == "{}"
    unknown_ca = Store(type="ext:redis", url=server.url, redis=RedisSettings(read_retries=0))
    with pytest.raises(StoreUnavailable):  # the system's CAs do not know the test's
        unknown_ca.read(sid)
    unchecked = Store(type="ext:redis", url=server.url, redis=RedisSettings(ssl_cert_reqs="none"))
    assert unchecked.read(sid) == "{}"


def test_a_read_the_store_did_not_answer_is_tried_again(tmp_path: Path) -> None:
    server = Redis(tmp_path, persistent=True)
    server.start()
    try:
        sid = new_session_id()
        store = Store(type="ext:redis", url=server.url,
                      redis=RedisSettings(read_retries=3, retry_backoff=0.2, connect_timeout=0.5))
        store.write(sid, "kept")
        server.stop()
        restart = gevent.spawn_later(0.1, server.start)  # back within the retries' ~1.4 s
        assert store.read(sid) == "kept"
        restart.join()
        server.stop()
        no_retry = Store(type="ext:redis", url=server.url, redis=RedisSettings(read_retries=0, connect_timeout=0.5))
        with pytest.raises(StoreUnavailable):
            no_retry.read(sid)
    finally:
        server.stop()


def test_an_acl_user_limited_to_the_prefix_and_the_session_commands_is_enough(tmp_path: Path) -> None:
    acl = ("user shop on >pw resetkeys ~shop:* resetchannels -@all "
           "+get +set +del +exists +pexpire +evalsha +script|load +ping")
    server = Redis(tmp_path, config=(acl, "user default off"))
    server.start()
    try:
        url = f"redis://shop:pw@127.0.0.1:{server.port}/0"
        store = Store(type="ext:redis", url=url, redis=RedisSettings(prefix="shop:"))
        sid = new_session_id()
        store.write(sid, "a")
        with store.transaction(sid) as txn:
            txn.write(txn.text + "b")
        assert store.read(sid) == "ab"
        store.remove(sid)
        assert store.read(sid) is None
        other_prefix = Store(type="ext:redis", url=url, redis=RedisSettings(prefix="other:", read_retries=0))
        with pytest.raises(StoreUnavailable):  # NOPERM: outside the user's keys
            other_prefix.read(sid)
    finally:
        server.stop()


def test_a_server_that_asks_for_a_client_certificate_gets_the_configured_one(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")  # the server's certificate serves as the client's too
    server = Redis(tmp_path, tls=certs, config=("tls-auth-clients yes",))
    server.start()
    try:
        sid = new_session_id()
        with_cert = Store(type="ext:redis", url=server.url, redis=RedisSettings(
            ssl_ca_certs=str(certs.ca), ssl_certfile=str(certs.cert), ssl_keyfile=str(certs.key)))
        with_cert.write(sid, "{}")
        assert with_cert.read(sid) == "{}"
        without = Store(type="ext:redis", url=server.url, redis=RedisSettings(ssl_ca_certs=str(certs.ca),
                                                                                read_retries=0))
        with pytest.raises(StoreUnavailable):
            without.read(sid)
    finally:
        server.stop()
