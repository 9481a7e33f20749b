from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import LAB
from tests.servers import Redis, Server, serve, write_ini


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The lab app (tests/apps.py) under ``wsgisession serve``, file store."""
    directory = tmp_path_factory.mktemp("lab")
    with serve(write_ini(directory, use=LAB)) as server:
        yield server


@pytest.fixture(scope="module")
def counter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The counter example under ``wsgisession serve``, file store."""
    directory = tmp_path_factory.mktemp("counter")
    with serve(write_ini(directory)) as server:
        yield server


@pytest.fixture
def ini_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A private redis-server for one test module that its tests may stop and start again: it keeps its data."""
    server = Redis(tmp_path_factory.mktemp("redis"), persistent=True)
    server.start()
    yield server
    server.stop()
