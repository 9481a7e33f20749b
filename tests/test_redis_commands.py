"""Commands: session-path Redis commands on reused redis-py connections (real redis-server)."""
from __future__ import annotations

import os
from typing import Any

import gevent
import pytest
import redis

from tests.servers import free_port
from wsgisession.backends import redis_commands
from wsgisession.backends.redis_commands import Commands, commands_for

pytestmark = pytest.mark.redis


def test_commands_run_and_reuse_one_connection(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    assert commands.execute("SET", "k", b"v") in (b"OK", "OK", True)
    assert commands.execute("GET", "k") == b"v"
    assert commands.execute("GET", "missing") is None
    assert len(commands._idle) == 1, "sequential commands share one connection"
    assert commands_for(redis_client) is commands_for(redis_client)


def test_an_error_reply_is_raised_and_the_connection_stays_in_step(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "text", b"abc")
    with pytest.raises(redis.ResponseError):
        commands.execute("INCR", "text")
    assert commands.execute("GET", "text") == b"abc"
    assert len(commands._idle) == 1


def test_pipelined_commands_answer_in_order_and_an_error_comes_after_every_reply(
    redis_client: redis.Redis[bytes],
) -> None:
    commands = Commands(redis_client)
    assert commands.execute_many(("SET", "a", b"1"), ("GET", "a"), ("GET", "b")) in (
        [b"OK", b"1", None],
        [True, b"1", None],
    )
    with pytest.raises(redis.ResponseError):
        commands.execute_many(("SET", "text", b"abc"), ("INCR", "text"), ("SET", "after", b"yes"))
    assert commands.execute("GET", "after") == b"yes", "the commands after the error ran"
    assert commands.execute("GET", "text") == b"abc" and len(commands._idle) == 1


def test_an_interrupted_command_never_leaves_its_reply_to_the_next(redis_url: str) -> None:
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url, socket_timeout=0.05)
    commands = Commands(client)
    commands.execute("SET", "k", b"mine")
    with pytest.raises(redis.TimeoutError):
        commands.execute("BLPOP", "empty-list", "0.3")  # its reply (nil) comes after the socket timeout
    assert commands._idle == [], "the interrupted connection is closed, not reused"
    gevent.sleep(0.4)
    assert commands.execute("GET", "k") == b"mine"
    client.close()


def test_greenlets_get_their_own_replies(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    for n in range(20):
        commands.execute("SET", f"k{n}", str(n).encode())
    replies = gevent.joinall([gevent.spawn(commands.execute, "GET", f"k{n}") for n in range(20)], raise_error=True)
    assert [g.value for g in replies] == [str(n).encode() for n in range(20)]


def test_an_idle_connection_the_server_closed_is_replaced(
    redis_client: redis.Redis[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = Commands(redis_client)
    commands.execute("SET", "k", b"v")
    redis_client.client_kill_filter(_type="normal", skipme=True)  # the server drops every other client
    monkeypatch.setattr(redis_commands, "_IDLE_CHECK", 0.0)  # as if it sat idle past the check
    assert commands.execute("GET", "k") == b"v"


def test_a_lost_script_is_loaded_again(redis_client: redis.Redis[bytes]) -> None:
    commands = Commands(redis_client)
    script = redis_client.register_script("return redis.call('GET', KEYS[1])")
    commands.execute("SET", "k", b"v")
    assert commands.run_script(script, ["k"], []) == b"v"
    redis_client.script_flush()
    assert commands.run_script(script, ["k"], []) == b"v"


def test_a_store_that_is_down_raises_a_connection_error() -> None:
    client: redis.Redis[bytes] = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        Commands(client).execute("GET", "k")


def test_after_a_fork_the_parents_connections_are_not_used(redis_client: redis.Redis[bytes], tmp_path: Any) -> None:
    commands = commands_for(redis_client)
    commands.execute("SET", "k", b"v")
    assert commands._idle
    pid = os.fork()
    if pid == 0:  # the child: its free list starts empty, and its own connection works
        code = 0 if not commands._idle and commands.execute("GET", "k") == b"v" else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert commands.execute("GET", "k") == b"v", "the parent's connection is still in step"
