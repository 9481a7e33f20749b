from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis

from tests.helpers import SECRET, Clock
from tests.servers import redis_server
from wsgisession.ids import Fingerprint
from wsgisession.manager import SessionManager
from wsgisession.store import Store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite", "file"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_manager(tmp_path: Path, clock: Clock) -> Callable[..., SessionManager]:
    def make(type: str = "memory", *, store_options: dict[str, Any] | None = None, **options: Any) -> SessionManager:
        store = Store(type=type, data_dir=str(tmp_path / "sessions"), **(store_options or {}))
        fingerprint = Fingerprint(secret=options.pop("secret", SECRET))
        return SessionManager(store=store, fingerprint=fingerprint, clock=clock, **options)

    return make


@pytest.fixture
def manager(make_manager: Callable[..., SessionManager], backend: str) -> SessionManager:
    return make_manager(backend)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for one test module."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis[bytes]]:
    """A client of that server, its database emptied first."""
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()
