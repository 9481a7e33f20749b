"""Session-path Redis commands on redis-py connections, with less per-command work.

Every socket event that reads a session sends one Redis command, and an atomic
update two (the lock scripts). Through ``redis.Redis``, each command also checks
a connection out of the pool and polls it for unread data, goes through the
retry and observability layers, and checks it back in: ~30 us of CPU per
command on top of the ~35-45 us the round trip itself costs here (README.rst,
Stores and Benchmarks). :class:`Commands` sends the same commands on the
same redis-py ``Connection`` objects (built from the client's pool settings),
kept in a small free list:

- a connection that sat idle for more than a second is polled before reuse
  (the server may have closed it); one in use more recently is trusted;
- a connection error is raised, never retried: the command may have run;
- a connection whose command was interrupted (an error, a timeout, a killed
  greenlet) is closed, never reused;
- after a fork the free list starts empty.
"""
from __future__ import annotations

import os
import time
import weakref
from typing import Any, Sequence

import redis
from redis.commands.core import Script
from redis.connection import Connection

_IDLE_CHECK = 1.0  # seconds idle after which a connection is polled before reuse
_MAX_IDLE = 64  # connections kept for reuse; more are closed


class Commands:
    """Runs single commands for one ``redis.Redis`` client (see the module's docstring)."""

    def __init__(self, client: redis.Redis[bytes]) -> None:
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = dict(pool.connection_kwargs)
        self._idle: list[tuple[Connection, float]] = []
        _LIVE.add(self)

    def forget(self) -> None:
        """Drop the free list without closing it (in a forked child: the sockets are the parent's)."""
        self._idle = []

    def _checkout(self) -> Connection:
        while self._idle:
            connection, since = self._idle.pop()
            if time.monotonic() - since < _IDLE_CHECK:
                return connection
            try:
                if not connection.can_read():  # nothing pending: not closed by the server
                    return connection
            except (redis.RedisError, OSError):
                pass
            connection.disconnect()
        fresh: Connection = self._connection_class(**self._connection_kwargs)
        return fresh

    def execute(self, *args: Any) -> Any:
        """Send one command and read its reply (``redis.RedisError`` on failure)."""
        connection = self._checkout()
        try:
            connection.send_command(*args)
            reply = connection.read_response()
        except redis.ResponseError:
            self._checkin(connection)  # an error reply: the connection is in step
            raise
        except BaseException:
            connection.disconnect()  # a reply may still be on its way: never reuse it
            raise
        self._checkin(connection)
        return reply

    def execute_many(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send several commands in one write and read their replies (a pipeline, not a transaction).

        An error reply is raised once every reply has been read (the connection stays in step).
        """
        connection = self._checkout()
        replies: list[Any] = []
        try:
            packed = connection.pack_commands(commands)
            connection.send_packed_command(packed)  # type: ignore[arg-type]  # the stubs say str; it is bytes
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            connection.disconnect()  # replies may still be on their way: never reuse it
            raise
        self._checkin(connection)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies

    def _checkin(self, connection: Connection) -> None:
        if len(self._idle) < _MAX_IDLE:
            self._idle.append((connection, time.monotonic()))
        else:
            connection.disconnect()

    def run_script(self, script: Script, keys: Sequence[str], args: Sequence[str]) -> Any:
        """``EVALSHA`` a script registered with ``register_script``, loading it if the server lost it."""
        sha: str = getattr(script, "sha")  # noqa: B009 - not in the type stubs
        try:
            return self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.execute("SCRIPT", "LOAD", getattr(script, "script"))  # noqa: B009
            return self.execute("EVALSHA", sha, len(keys), *keys, *args)


_LIVE: weakref.WeakSet[Commands] = weakref.WeakSet()


def _forget_all() -> None:
    for commands in list(_LIVE):
        commands.forget()


os.register_at_fork(after_in_child=_forget_all)  # gunicorn forks workers from a loaded app (preload)


def commands_for(client: redis.Redis[bytes]) -> Commands:
    """The :class:`Commands` of a client (one per client, kept on it)."""
    commands: Commands | None = getattr(client, "_wsgisession_commands", None)
    if commands is None:
        commands = Commands(client)
        setattr(client, "_wsgisession_commands", commands)  # noqa: B010
    return commands
