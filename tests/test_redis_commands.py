"""Commands: session-path Redis commands pipelined across greenlets on one connection (real redis-server)."""
from __future__ import annotations

import os
import select
import socket
import threading
from typing import Any

import gevent
import gevent.select
import gevent.socket
import pytest
import redis
import redis.connection
from redis._parsers.resp2 import _RESP2Parser

from tests.servers import free_port
from wsgisession import redis_commands
from wsgisession.redis_commands import Commands, LuaScript, commands_for

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def cooperative_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py's connections on gevent's sockets, as under the servers' monkey-patching."""
    monkeypatch.setattr(redis.connection, "socket", gevent.socket)


def _connection_id(commands: Commands) -> int:
    return int(commands.execute("CLIENT", "ID"))


def test_commands_run_on_one_connection(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    assert commands.execute("SET", "k", b"v") in (b"OK", "OK", True)
    assert commands.execute("GET", "k") == b"v"
    assert commands.execute("GET", "missing") is None
    assert _connection_id(commands) == _connection_id(commands), "sequential commands share one connection"
    assert commands_for(redis_client) is commands_for(redis_client)


def test_an_error_reply_is_raised_and_the_connection_stays_in_step(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "text", b"abc")
    before = _connection_id(commands)
    with pytest.raises(redis.ResponseError):
        commands.execute("INCR", "text")
    assert commands.execute("GET", "text") == b"abc"
    assert _connection_id(commands) == before


def test_pipelined_commands_answer_in_order_and_an_error_comes_after_every_reply(
    redis_client: redis.Redis[bytes],
) -> None:
    commands = Commands(redis_client)
    assert commands.execute_many(("SET", "a", b"1"), ("GET", "a"), ("GET", "b")) in (
        [b"OK", b"1", None],
        [True, b"1", None],
    )
    before = _connection_id(commands)
    with pytest.raises(redis.ResponseError):
        commands.execute_many(("SET", "text", b"abc"), ("INCR", "text"), ("SET", "after", b"yes"))
    assert commands.execute("GET", "after") == b"yes", "the commands after the error ran"
    assert commands.execute("GET", "text") == b"abc" and _connection_id(commands) == before


def test_concurrent_greenlets_share_one_connection_and_each_gets_its_own_replies(
    redis_client: redis.Redis[bytes],
) -> None:
    commands = Commands(redis_client)
    for n in range(200):
        commands.execute("SET", f"k{n}", str(n).encode())

    def one(n: int) -> tuple[Any, ...]:
        if n % 2:
            return (commands.execute("GET", f"k{n}"),)
        return tuple(commands.execute_many(("GET", f"k{n}"), ("CLIENT", "ID"), ("GET", f"k{n + 1}")))

    greenlets = [gevent.spawn(one, n) for n in range(200)]
    gevent.joinall(greenlets, raise_error=True)
    ids = set()
    for n, greenlet in enumerate(greenlets):
        if n % 2:
            assert greenlet.value == (str(n).encode(),)
        else:
            mine, client_id, next_one = greenlet.value
            assert (mine, next_one) == (str(n).encode(), str(n + 1).encode() if n < 199 else None)
            ids.add(client_id)
    assert len(ids) == 1, "every greenlet's commands went down the same connection"


def test_a_greenlet_killed_while_it_waits_leaves_the_connection_in_step(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    commands.execute_many(("SET", "a", b"A"), ("SET", "b", b"B"))
    before = _connection_id(commands)
    reader = gevent.spawn(commands.execute, "BLPOP", "empty-list", "0.2")  # reads, and holds up what follows
    gevent.sleep(0.02)
    killed = gevent.spawn(commands.execute, "GET", "a")
    waiting = gevent.spawn(commands.execute, "GET", "b")
    gevent.sleep(0.02)
    killed.kill()
    assert reader.get() is None and waiting.get() == b"B"
    assert commands.execute("GET", "a") == b"A", "the killed greenlet's reply was read and dropped"
    assert _connection_id(commands) == before


def test_killing_the_greenlet_that_reads_fails_the_others_and_the_next_command_reconnects(
    redis_client: redis.Redis[bytes],
) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "a", b"A")
    before = _connection_id(commands)
    reader = gevent.spawn(commands.execute, "BLPOP", "empty-list", "0.3")
    gevent.sleep(0.02)
    waiting = gevent.spawn(commands.execute, "GET", "a")
    gevent.sleep(0.02)
    reader.kill()
    with pytest.raises(redis.ConnectionError):
        waiting.get()
    assert commands.execute("GET", "a") == b"A"
    assert _connection_id(commands) != before, "the broken connection was replaced"


def test_a_socket_timeout_fails_every_pending_command_and_is_never_read_by_the_next(redis_url: str) -> None:
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url, socket_timeout=0.05)
    commands = Commands(client)
    commands.execute("SET", "k", b"mine")
    slow = gevent.spawn(commands.execute, "BLPOP", "empty-list", "0.3")  # its reply comes after the timeout
    gevent.sleep(0.01)
    behind = gevent.spawn(commands.execute, "GET", "k")
    with pytest.raises(redis.TimeoutError):
        slow.get()
    with pytest.raises(redis.TimeoutError):
        behind.get()
    gevent.sleep(0.4)
    assert commands.execute("GET", "k") == b"mine"
    client.close()


def test_an_idle_connection_the_server_closed_is_replaced(
    redis_client: redis.Redis[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    redis_client.client_kill_filter(_type="normal", skipme=True)  # the server drops every other client
    monkeypatch.setattr(redis_commands, "_IDLE_CHECK", 0.0)  # as if it sat idle past the check
    assert commands.execute("GET", "k") == b"v"


@pytest.mark.parametrize("parser", ["hiredis", "redis-py"])
def test_bytes_the_parser_holds_on_an_idle_connection_are_never_taken_for_a_reply(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, parser: str
) -> None:
    """A parser reads what the socket has, past the reply it parses: on an idle line nothing is owed, so those
    bytes break it. The socket alone looked idle, and the next command took them for its reply."""
    # redis-py's own parser (its RESP3 one, given this, on a RESP3 connection)
    options: dict[str, Any] = {} if parser == "hiredis" else {"parser_class": _RESP2Parser}
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url, **options)
    commands = Commands(client)
    commands.execute("SET", "k", b"v")
    line = commands._line  # noqa: SLF001
    assert line is not None
    connection = line.connection
    assert (type(connection._parser).__name__ == "_HiredisParser") == (parser == "hiredis")  # noqa: SLF001
    connection._sock.sendall(b"PING\r\nPING\r\n")  # noqa: SLF001  # two replies, one of them never asked for
    gevent.sleep(0.05)  # both arrive: one read takes them together
    assert connection.read_response() == b"PONG"
    monkeypatch.setattr(redis_commands, "_IDLE_CHECK", 0.0)  # as if it sat idle past the check
    assert commands.execute("GET", "k") == b"v"
    assert commands.execute("GET", "k") == b"v", "the line is in step again"
    client.close()


def test_the_idle_check_lets_no_other_greenlet_run(
    redis_client: redis.Redis[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Others that ran during the check could send commands on the line, whose replies it took for a closed one."""
    monkeypatch.setattr(select, "poll", gevent.select.poll)  # as in a served process (gevent's monkey patching)
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    line = commands._line  # noqa: SLF001
    assert line is not None
    ran: list[str] = []
    gevent.spawn(ran.append, "another greenlet")  # runs at this greenlet's first switch to the hub
    assert commands._still_open(line) is True  # noqa: SLF001
    assert ran == [], "the check switched greenlets"
    gevent.sleep(0)
    assert ran == ["another greenlet"]


def test_many_greenlets_after_an_idle_time_share_the_open_connection(
    redis_client: redis.Redis[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idle check never yields: concurrent commands after a pause all get their replies on the same line.

    It yielded with hiredis's parser (its can_read() polls through gevent's select): the
    greenlets behind it sent their commands meanwhile, the check read their replies as data
    on an idle connection and broke it (their requests answered 503), or two checks waited
    on the socket at once (ConcurrentObjectUseError).
    """
    monkeypatch.setattr(select, "poll", gevent.select.poll)  # as in a served process (gevent's monkey patching)
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    before = _connection_id(commands)
    monkeypatch.setattr(redis_commands, "_IDLE_CHECK", 0.0)  # as if it sat idle past the check, every time
    for _ in range(3):
        replies = [g.get() for g in [gevent.spawn(commands.execute, "GET", "k") for _ in range(50)]]
        assert replies == [b"v"] * 50
    assert _connection_id(commands) == before, "the open connection was kept"


def test_a_lost_script_is_loaded_again(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    script = LuaScript("return redis.call('GET', KEYS[1])")
    commands.execute("SET", "k", b"v")
    assert commands.run_script(script, ["k"], []) == b"v"
    redis_client.script_flush()
    assert commands.run_script(script, ["k"], []) == b"v"


def test_a_store_that_is_down_raises_a_connection_error() -> None:
    client: redis.Redis[bytes] = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    commands = Commands(client)
    with pytest.raises(redis.ConnectionError):
        commands.execute("GET", "k")
    with pytest.raises(redis.ConnectionError):
        commands.execute_many(("GET", "k"), ("GET", "j"))


def test_after_a_fork_the_parents_connection_is_not_used(redis_client: redis.Redis[bytes]) -> None:
    commands = commands_for(redis_client)
    parent = _connection_id(commands)
    pid = gevent.fork()  # os.fork() plus the hub's reinit (gunicorn forks before any hub exists)
    if pid == 0:  # the child: it opens its own connection
        code = 0 if _connection_id(commands) != parent and commands.execute("GET", "missing") is None else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _connection_id(commands) == parent, "the parent's connection is still in step"


def test_each_thread_has_its_own_connection(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    here = _connection_id(commands)
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.extend([_connection_id(commands), commands.execute("GET", "k")]))
    thread.start()
    thread.join(5)
    assert seen[1] == b"v" and seen[0] != here, "another thread (another hub) gets a connection of its own"
    assert _connection_id(commands) == here


def test_commands_queued_in_one_pass_of_the_loop_are_written_together(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    reads_before = int(redis_client.info("stats")["total_reads_processed"])
    greenlets = [gevent.spawn(commands.execute, "GET", "k") for _ in range(50)]
    gevent.joinall(greenlets, raise_error=True)
    reads = int(redis_client.info("stats")["total_reads_processed"]) - reads_before - 1  # less our INFO
    assert [g.value for g in greenlets] == [b"v"] * 50
    assert reads <= 5, f"redis-server read 50 commands in {reads} reads"


def test_the_writer_greenlet_ends_with_its_broken_connection(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    line = commands._line
    assert line is not None and line.cooperative and line.writer is not None
    reader = gevent.spawn(commands.execute, "BLPOP", "empty-list", "0.3")
    gevent.sleep(0.02)
    reader.kill()  # breaks the connection
    line.writer.join(1)
    assert line.broken and line.writer.dead
    assert commands.execute("GET", "k") == b"v"


def test_blocking_sockets_write_each_command_at_once(
    redis_client: redis.Redis[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis.connection, "socket", socket)  # no gevent: nobody else would run a writer
    commands = Commands(redis_client)
    assert commands.execute("SET", "k", b"v") in (b"OK", True)
    assert commands.execute_many(("GET", "k"), ("GET", "j")) == [b"v", None]
    line = commands._line
    assert line is not None and not line.cooperative and line.writer is None


def test_a_writer_killed_while_idle_is_replaced(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    line = commands._line
    assert line is not None and line.writer is not None
    line.writer.kill()  # e.g. a shutdown that kills every greenlet
    with gevent.Timeout(5):  # with nobody to write it, the command would wait for ever
        assert commands.execute("GET", "k") == b"v"
    assert commands._line is line and not line.broken, "the same connection, with a new writer"


# the commands of the session path, as the store and the lock send them (str, bytes and int arguments)
OUR_COMMANDS = [
    ("GET", "wsgisession:abc:session"),
    ("SET", "wsgisession:abc:session", '{"user":"é"}'.encode(), "EX", 3600),
    ("SET", "lock:abc", "host.1.ff", "NX", "PX", "5000"),
    ("EVALSHA", "0" * 40, 2, "lock:abc", "wsgisession:abc:session", "host.1.ff", "5000", "text é", ""),
    ("DEL", "wsgisession:abc:session"),
]


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    """hiredis's C packer (redis-py 8.2 runs each argument through its Python encoder first)."""
    connection = redis.Connection()
    line = redis_commands._Line(gevent.get_hub(), connection)  # noqa: SLF001
    assert line.hiredis
    for command in OUR_COMMANDS:
        assert redis_commands._pack(connection, [command], True) == [b"".join(connection.pack_command(*command))]  # noqa: SLF001
    assert redis_commands._pack(connection, OUR_COMMANDS, True) == [  # noqa: SLF001
        b"".join(connection.pack_commands(OUR_COMMANDS))
    ]


def test_another_encoding_is_packed_by_redis_py() -> None:
    connection = redis.Connection(encoding="latin-1")
    line = redis_commands._Line(gevent.get_hub(), connection)  # noqa: SLF001
    assert not line.hiredis
    assert redis_commands._pack(connection, [("SET", "k", "é")], line.hiredis) == connection.pack_command(  # noqa: SLF001
        "SET", "k", "é"
    )
    assert b"\xe9" in b"".join(connection.pack_command("SET", "k", "é"))
    errors = redis.Connection(encoding_errors="replace")
    assert not redis_commands._Line(gevent.get_hub(), errors).hiredis  # noqa: SLF001


def test_an_argument_hiredis_cannot_pack_is_left_to_redis_py() -> None:
    connection = redis.Connection()
    with pytest.raises(redis.DataError):  # what redis-py makes of it
        redis_commands._pack(connection, [("SET", "k", object())], True)  # noqa: SLF001
