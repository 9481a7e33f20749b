"""The pickle-free backends: JSON text stored verbatim, never unpickled.

A planted pickle whose ``__reduce__`` would create a marker file is put where a
session record lives (a file, a Redis key); reading it must give no session
and leave no marker. Real files, a real redis-server.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis

from tests.helpers import SECRET
from wsgisession.backends import file as file_backend
from wsgisession.backends import memory
from wsgisession.backends.file import FileNamespaceManager
from wsgisession.backends.memory import MemoryNamespaceManager
from wsgisession.backends.redis import RedisNamespaceManager
from wsgisession.ids import new_session_id
from wsgisession.ids import Fingerprint
from wsgisession.manager import SessionManager
from wsgisession.store import Store


class Planted:
    """Unpickling this creates ``path``: what an attacker's payload would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def pickles(marker: Path) -> list[bytes]:
    payloads = [pickle.dumps(Planted(marker), protocol=p) for p in (0, 2, pickle.HIGHEST_PROTOCOL)]
    pickle.loads(payloads[0]).close()  # the control: unpickling it does run code
    assert marker.exists()
    marker.unlink()
    return payloads


def manager_for(store: Store) -> SessionManager:
    return SessionManager(store=store, fingerprint=Fingerprint(secret=SECRET))


# -- file ------------------------------------------------------------------
def test_file_backend_stores_json_text_under_a_digest(tmp_path: Path) -> None:
    sid = new_session_id()
    manager = FileNamespaceManager(sid, data_dir=str(tmp_path))
    manager.set_value("session", '{"n": 1}')
    digest = hashlib.sha256(sid.encode()).hexdigest()
    path = tmp_path / "wsgisession" / digest[:2] / f"{digest}.json"
    assert json.loads(path.read_text()) == {"session": '{"n": 1}'}
    assert manager["session"] == '{"n": 1}' and "session" in manager and manager.keys() == ["session"]
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file is left behind"
    del manager["session"]
    assert not path.exists()


@pytest.mark.parametrize("exchange", ["renameat2", "rename"])
def test_file_backend_replaces_files_whole_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: str
) -> None:
    if exchange == "rename":
        monkeypatch.setattr(file_backend, "_exchange", None)
    elif file_backend._exchange is None:
        pytest.skip("no renameat2 in this C library")
    manager = FileNamespaceManager(new_session_id(), data_dir=str(tmp_path))
    manager.set_value("other", "kept")
    before = Path(manager.file).read_bytes()
    old = open(manager.file, "rb")  # a reader that opened the file before the writes
    for n in range(5):
        manager.set_value("session", json.dumps({"n": n}))
    assert manager["session"] == '{"n": 4}' and manager["other"] == "kept"
    manager.replace_value("session", "only")
    assert manager.keys() == ["session"] and manager["session"] == "only"
    with old:
        assert old.read() == before, "each write is a new file, never an edit in place"
    assert [p.name for p in Path(manager.file).parent.iterdir()] == [Path(manager.file).name]


def test_file_backend_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    manager = FileNamespaceManager(new_session_id(), data_dir=str(tmp_path))
    big = "x" * 300_000
    manager.set_value("session", big)
    seen: set[int] = set()

    def read() -> None:
        for _ in range(200):
            seen.add(len(FileNamespaceManager(manager.namespace, data_dir=str(tmp_path))["session"]))
            gevent.sleep(0)

    reader = gevent.spawn(read)
    for n in range(200):
        manager.set_value("session", ("y" if n % 2 else "x") * 300_000)
        gevent.sleep(0)
    reader.join()
    assert seen == {300_000}


@pytest.mark.parametrize("namespace", ["../../x", "..x", "/etc/passwd", "a\x00b", ""])
def test_file_backend_paths_stay_inside_its_directory(tmp_path: Path, namespace: str) -> None:
    root = tmp_path / "data"
    manager = FileNamespaceManager(namespace, data_dir=str(root))
    manager.set_value("session", "{}")
    for path in (Path(manager.file), Path(manager.lock_path())):
        assert path.resolve().is_relative_to(root.resolve())
        assert namespace not in path.name or not namespace
    assert [p for p in tmp_path.iterdir()] == [root]


def test_file_backend_stores_text_only(tmp_path: Path) -> None:
    manager = FileNamespaceManager(new_session_id(), data_dir=str(tmp_path))
    manager.set_value("session", "{}")
    with pytest.raises(TypeError):
        manager.set_value("session", {"n": 1})  # type: ignore[arg-type]
    assert manager["session"] == "{}"


def test_file_backend_never_unpickles_a_planted_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    store = Store(type="file", data_dir=str(tmp_path / "sessions"))
    for payload in pickles(marker):
        sid = new_session_id()
        path = Path(FileNamespaceManager(sid, data_dir=str(tmp_path / "sessions")).file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        assert store.read(sid) is None
        assert manager_for(store).read(sid) is None
        assert not marker.exists()


def test_file_backend_ignores_a_corrupt_record_and_logs_no_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sid = new_session_id()
    manager = FileNamespaceManager(sid, data_dir=str(tmp_path))
    os.makedirs(os.path.dirname(manager.file), exist_ok=True)
    for junk in (b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'"text"'):
        Path(manager.file).write_bytes(junk)
        assert "session" not in manager
        with pytest.raises(KeyError):
            manager["session"]
    assert sid not in caplog.text


def test_backends_are_beaker_backends() -> None:
    import beaker.cache

    assert beaker.cache.clsmap["wsgisession.file"] is FileNamespaceManager
    assert beaker.cache.clsmap["wsgisession.memory"] is MemoryNamespaceManager
    assert beaker.cache.clsmap["wsgisession.redis"] is RedisNamespaceManager


# -- memory ----------------------------------------------------------------
def test_memory_backend_stores_text_and_keeps_no_empty_namespace() -> None:
    sid = new_session_id()
    manager = MemoryNamespaceManager(sid)
    assert "session" not in manager
    with pytest.raises(KeyError):
        manager["session"]
    assert sid not in memory.namespaces()  # asking kept nothing
    manager.set_value("session", '{"n": 1}')
    assert manager["session"] == '{"n": 1}' and manager.keys() == ["session"]
    assert MemoryNamespaceManager(sid)["session"] == '{"n": 1}'  # one dictionary per process
    with pytest.raises(TypeError):
        manager.set_value("session", b"bytes")
    assert manager["session"] == '{"n": 1}'
    del manager["session"]
    assert sid not in memory.namespaces()
    manager["session"] = "x"
    manager.do_remove()
    assert "session" not in manager and sid not in memory.namespaces()


# -- redis -----------------------------------------------------------------
@pytest.mark.redis
def test_redis_backend_stores_utf8_text_verbatim(redis_client: redis.Redis[bytes], redis_url: str) -> None:
    sid = new_session_id()
    manager = RedisNamespaceManager(sid, url=redis_url)
    manager.set_value("session", '{"s": "\u00e9"}', expiretime=60)
    assert redis_client.get(f"wsgisession:{{{sid}}}:session") == '{"s": "\u00e9"}'.encode()
    assert 0 < redis_client.ttl(f"wsgisession:{{{sid}}}:session") <= 60
    assert manager["session"] == '{"s": "\u00e9"}' and "session" in manager and manager.keys() == ["session"]
    with pytest.raises(TypeError):
        manager.set_value("session", b"{}")  # type: ignore[arg-type]
    other = RedisNamespaceManager(new_session_id(), url=redis_url)
    other.set_value("session", "{}")
    manager.do_remove()
    assert "session" not in manager and other["session"] == "{}"
    with pytest.raises(KeyError):
        del manager["session"]


@pytest.mark.redis
def test_redis_backend_never_unpickles_a_planted_pickle(
    redis_client: redis.Redis[bytes], redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "marker"
    store = Store(type="ext:redis", url=redis_url)
    for payload in pickles(marker):
        sid = new_session_id()
        redis_client.set(f"wsgisession:{{{sid}}}:session", payload)
        assert manager_for(store).read(sid) is None
        text = store.read(sid)
        assert text is None or text == payload.decode("utf-8")  # protocol 0 is ASCII: text, but not JSON
        assert not marker.exists()
        assert sid not in caplog.text
