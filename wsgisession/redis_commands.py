"""Session-path Redis commands, pipelined across greenlets on one redis-py connection.

Through ``redis.Redis`` each command checks a connection out of the pool, goes
through the retry and observability layers and waits alone for its reply:
~30 us of CPU, plus a round trip (a write that wakes redis-server, a failed
``recv``, a trip through the event loop) per command. :class:`Commands` sends
the commands of all greenlets of a thread on one redis-py ``Connection`` (built
from the client's pool settings), as node-redis does within a tick:

- a writer greenlet, woken at the end of the event loop's current pass, writes
  all the commands queued in that pass at once (with blocking sockets, no
  gevent, each command is written at once);
- one greenlet at a time reads replies for all (leader and followers), hands
  each to its greenlet, then wakes the next waiting greenlet to read on.

Under load redis-server reads ~0.1 times per event instead of once per command;
a greenlet alone pays ~10-20 us more per command (docs/design.rst, docs/benchmarks.rst).

- An idle connection (over a second) is checked before use: data on its socket or
  in its parser's buffer, or its end, replaces it.
- Commands are packed by hiredis's C packer where it packs them as redis-py does
  (text as UTF-8, strictly: the default encoding), else by redis-py.
- A connection error, a timeout, a failed write, or a greenlet killed while it
  reads closes the connection: every command still owed a reply fails with a
  ``redis.ConnectionError`` or ``redis.TimeoutError``, the next one reconnects,
  nothing is retried (a command may have run). A greenlet killed while it
  waits leaves the stream in step (its reply is read and dropped).
- Waiting greenlets have no timeout of their own: the reader's socket timeout
  bounds the wait. Only commands answered at once belong here (none blocks).
- After a fork the child starts with no connection.

On a Redis Cluster (:class:`ClusterCommands`) each command goes, pipelined the
same way, to the primary that holds its key's slot (a session's commands name
keys of one slot: one hash tag); a ``MOVED`` or ``ASK`` reply (the command did
not run) refreshes the slot map and sends it again, at most twice.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import select
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

import gevent
import gevent.monkey
import gevent.socket
import redis
import redis.connection as redis_connection
from gevent.hub import Hub, Waiter
from gevent.lock import Semaphore
from redis.connection import Connection

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # the redis extra brings it (redis[hiredis])
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py packs
    _hiredis_pack = None

if TYPE_CHECKING:
    from .redis_client import LazyCluster

_T = TypeVar("_T")

_IDLE_CHECK = 1.0  # seconds idle after which the connection is polled before a command


class LuaScript:
    """A Lua script run by its SHA1 (``EVALSHA``), loaded again if the server lost it."""

    __slots__ = ("text", "sha")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode("utf-8")).hexdigest()


class _Batch:
    """The replies one greenlet waits for: commands sent together, answered in order."""

    __slots__ = ("size", "replies", "waiter")

    def __init__(self, size: int) -> None:
        self.size = size
        self.replies: list[Any] = []
        self.waiter: Waiter[Any] | None = None  # set while the greenlet waits for another to read


#: the standard library's poll, even under gevent's monkey patching (whose poll waits on the event loop)
_poll = gevent.monkey.get_original("select", "poll")


def _readable(sock: Any) -> bool:
    """Whether ``sock`` holds data or its end (a peer that closed it): at once, taking nothing, never switching."""
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted above the OS socket
    if pending is not None and pending():
        return True
    poller = _poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _buffered(parser: Any) -> bool:
    """Whether redis-py's ``parser`` holds bytes it read and did not parse yet (hiredis's or redis-py's own)."""
    reader = getattr(parser, "_reader", None)  # _HiredisParser: a hiredis.Reader
    if reader is not None:
        return bool(reader.has_data())
    buffer = getattr(parser, "_buffer", None)  # _RESP2Parser / _RESP3Parser: a SocketBuffer
    unread = getattr(buffer, "unread_bytes", None)
    return bool(unread()) if unread is not None else False


class _Line:
    """One connection of one hub and the replies it still owes, in the order they will come."""

    __slots__ = (
        "hub", "connection", "pending", "send_lock", "reading", "broken", "used", "connected", "cooperative",
        "outbox", "writer", "writer_waiter", "writer_woken", "hiredis",
    )

    def __init__(self, hub: Hub, connection: Connection) -> None:
        self.hub = hub
        self.connection = connection
        self.pending: deque[_Batch] = deque()  # in the order their commands were queued
        self.send_lock = Semaphore()  # connecting; writing when the sockets block
        self.reading = False
        self.broken = False
        self.used = time.monotonic()
        self.connected = False
        self.cooperative = False  # gevent's sockets: commands are queued for the writer greenlet
        self.outbox: list[bytes] = []  # packed commands queued, not yet written
        self.writer: gevent.Greenlet[Any, Any] | None = None
        self.writer_waiter: Waiter[Any] | None = None  # set while the writer waits for commands
        self.writer_woken = False
        #: commands are packed by hiredis's C packer, where it packs them as redis-py would (see _packs_alike)
        self.hiredis = _packs_alike(connection)


def _packs_alike(connection: Connection) -> bool:
    """Whether hiredis packs a command of ours as ``connection.pack_command`` does: its text as UTF-8, strictly.

    Speed: redis-py 8.2 passes every argument through its Python ``Encoder`` before
    hiredis packs it: a socket ``incr`` on the Redis store went from 546.6k to 642.7k
    server instructions (callgrind.py, 2026-12-04). Our commands' arguments are ``str``,
    ``bytes`` and ``int``, which hiredis encodes itself as the default encoder would.
    """
    encoder = connection.encoder
    return (_hiredis_pack is not None and codecs.lookup(encoder.encoding).name == "utf-8"
            and encoder.encoding_errors == "strict")


class Commands:
    """Runs session-path commands for one ``redis.Redis`` client (see the module's docstring)."""

    def __init__(self, client: redis.Redis[bytes]) -> None:
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = dict(pool.connection_kwargs)
        self._lines: weakref.WeakKeyDictionary[Hub, _Line] = weakref.WeakKeyDictionary()
        self._line: _Line | None = None  # the last used line: a lookup saved on every command
        _LIVE.add(self)

    def forget(self) -> None:
        """Drop the connections without closing them (in a forked child: the sockets are the parent's)."""
        self._lines = weakref.WeakKeyDictionary()
        self._line = None

    def execute(self, *args: Any) -> Any:
        """Send one command and read its reply (``redis.RedisError`` on failure)."""
        reply = self._run((args,))[0]
        if isinstance(reply, redis.RedisError):
            raise reply
        return reply

    def execute_many(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send several commands in one write and read their replies (a pipeline, not a transaction).

        An error reply is raised once every reply has been read.
        """
        replies = self._run(commands)
        for reply in replies:
            if isinstance(reply, redis.RedisError):
                raise reply
        return replies

    def run_script(self, script: LuaScript, keys: Sequence[str], args: Sequence[str]) -> Any:
        """``EVALSHA`` ``script``, loading it first if the server does not have it (``SCRIPT LOAD``)."""
        try:
            return self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.execute("SCRIPT", "LOAD", script.text)
            return self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    def _line_for(self, hub: Hub) -> _Line:
        line = self._line
        if line is None or line.hub is not hub or line.broken:
            line = self._lines.get(hub)
            if line is None or line.broken:
                line = self._lines[hub] = _Line(hub, self._connection_class(**self._connection_kwargs))
            self._line = line
        return line

    def _run(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` together; their replies (error replies as exceptions, not raised)."""
        hub = gevent.get_hub()
        batch = _Batch(len(commands))
        while True:
            line = self._line_for(hub)
            if not line.connected and not self._connect(line):
                continue
            if not line.pending and time.monotonic() - line.used > _IDLE_CHECK and not self._still_open(line):
                continue
            connection = line.connection
            packed = _pack(connection, commands, line.hiredis)
            if line.cooperative:
                line.pending.append(batch)
                line.outbox.extend(packed)
                _wake_writer(self, line)
                break
            with line.send_lock:
                if line.broken:
                    continue
                line.pending.append(batch)
                try:
                    connection.send_packed_command(packed, check_health=False)  # type: ignore[arg-type]
                except BaseException as exc:  # perhaps a partial write: the stream is out of step
                    self._break(line, exc)
                    raise
                break
        self._wait(line, batch)
        return batch.replies

    def _connect(self, line: _Line) -> bool:
        """Connect ``line`` (once); ``False`` if another greenlet broke it meanwhile."""
        with line.send_lock:
            if line.broken:
                return False
            if not line.connected:
                try:  # connect(), as the pool does: a Sentinel's connection asks the sentinels for the primary here
                    line.connection.connect()
                except BaseException as exc:
                    self._break(line, exc)
                    raise
                line.connected = True
                line.cooperative = _cooperative()
                line.used = time.monotonic()
        return True

    def _write(self, line: _Line) -> None:
        """The writer greenlet: writes what was queued, in order, until the line breaks."""
        while not line.broken:
            if not line.outbox:
                waiter: Waiter[Any] = Waiter(line.hub)
                line.writer_waiter, line.writer_woken = waiter, False
                try:
                    waiter.get()
                finally:
                    line.writer_waiter = None
                continue
            data, line.outbox = b"".join(line.outbox), []  # one write, not one per command
            try:
                line.connection.send_packed_command([data], check_health=False)  # type: ignore[list-item]  # the stubs say str; it is bytes
            except BaseException as exc:
                if not line.broken:
                    self._break(line, exc)
                if not isinstance(exc, Exception):
                    raise
                return

    def _still_open(self, line: _Line) -> bool:
        """Whether the idle ``line`` is still open; if the server closed it (or sent what nobody asked for), it is broken.

        The check never switches greenlets. ``Connection.can_read()`` did, with
        hiredis's parser: it polls through ``select.poll``, which gevent's monkey
        patching makes a wait on the event loop. Other greenlets then sent their
        commands on the line, and the check took their replies for data on an idle
        connection and broke it under them (their requests were answered 503), or
        waited on the socket beside the greenlet reading them (ConcurrentObjectUseError).

        Bytes the parser read with the last reply and holds (hiredis reads what the
        socket has, past the reply) count as well: nothing is owed on an idle line,
        and the next command would take them for its reply.
        """
        connection = line.connection
        sock = getattr(connection, "_sock", None)  # redis-py's socket of a connected connection
        try:
            if sock is not None and not _buffered(getattr(connection, "_parser", None)) and not _readable(sock):
                return True
        except (OSError, ValueError):
            pass
        self._break(line, redis.ConnectionError("the idle connection was closed"))
        return False

    def _wait(self, line: _Line, batch: _Batch) -> None:
        """Until ``batch`` has its replies: read them (and others') or wait for the greenlet that does."""
        while len(batch.replies) < batch.size:
            if not line.reading:
                line.reading = True
                try:
                    self._read(line, batch)
                finally:
                    line.reading = False
                    _hand_over(line)
            else:
                waiter: Waiter[Any] = Waiter(line.hub)
                batch.waiter = waiter
                try:
                    waiter.get()  # no timeout of its own: the reading greenlet's socket timeout bounds the wait
                except BaseException:
                    batch.waiter = None
                    _hand_over(line)  # a hand-over meant for this greenlet must not be lost
                    raise
                finally:
                    batch.waiter = None

    def _read(self, line: _Line, batch: _Batch) -> None:
        """Read replies in order, handing each to its greenlet, until ``batch`` has all of its own."""
        connection, pending, wake = line.connection, line.pending, line.hub.loop.run_callback
        while len(batch.replies) < batch.size:
            try:
                reply = connection.read_response(disconnect_on_error=False)
            except redis.ResponseError as exc:
                reply = exc
            except BaseException as exc:
                if not line.broken:
                    self._break(line, exc)
                    raise
                if not isinstance(exc, Exception):
                    raise
                return  # another greenlet broke the line under this read: the error is among the batch's replies
            head = pending[0]
            head.replies.append(reply)
            if len(head.replies) == head.size:
                pending.popleft()
                if head.waiter is not None:
                    wake(head.waiter.switch, None)
        line.used = time.monotonic()

    def _break(self, line: _Line, exc: BaseException) -> None:
        """Close ``line``: every reply it still owes becomes a connection error; the next command opens another."""
        line.broken = True
        line.connection.disconnect()
        kind = redis.TimeoutError if isinstance(exc, redis.TimeoutError) else redis.ConnectionError
        message = str(exc) if isinstance(exc, redis.RedisError) else f"the Redis connection broke: {exc!r}"
        wake = line.hub.loop.run_callback
        while line.pending:
            owed = line.pending.popleft()
            owed.replies.extend([kind(message)] * (owed.size - len(owed.replies)))  # one exception per greenlet
            if owed.waiter is not None:
                wake(owed.waiter.switch, None)
        line.outbox = []
        if line.writer_waiter is not None:
            wake(line.writer_waiter.switch, None)  # it sees the line broken and ends


def _cooperative() -> bool:
    """Whether redis-py's connections are on gevent's sockets (monkey-patched, or as in the tests)."""
    return getattr(getattr(redis_connection, "socket", None), "socket", None) is gevent.socket.socket


def _wake_writer(commands: Commands, line: _Line) -> None:
    """Have the writer greenlet write the queue at the end of this pass of the event loop."""
    if line.writer is None or line.writer.dead:  # dead: killed while it waited (the stream is in step)
        line.writer = gevent.spawn(commands._write, line)  # it starts after the greenlets already scheduled
    elif line.writer_waiter is not None and not line.writer_woken:
        line.writer_woken = True
        line.hub.loop.run_callback(line.writer_waiter.switch, None)


def _hand_over(line: _Line) -> None:
    """Wake the first waiting greenlet so that it reads next (others still to wait check for themselves)."""
    if line.reading or line.broken:
        return
    for batch in line.pending:
        if batch.waiter is not None:
            line.hub.loop.run_callback(batch.waiter.switch, None)
            return


_LIVE: weakref.WeakSet[Commands] = weakref.WeakSet()


def _forget_all() -> None:
    for commands in list(_LIVE):
        commands.forget()


os.register_at_fork(after_in_child=_forget_all)  # gunicorn forks workers from a loaded app (preload)


class ClusterCommands:
    """Session-path commands on a Redis Cluster: each to the :class:`Commands` of its key's primary."""

    #: times a command answered MOVED or ASK (it did not run) is sent again after the slot map is refreshed
    REROUTES = 2

    def __init__(self, cluster: LazyCluster) -> None:
        self._cluster = cluster
        self._stale = False  # a node failed: ask for the slot map before the next command (it may have moved)

    def _route(self, key: Any, call: Callable[[Commands], _T]) -> _T:
        for attempt in range(self.REROUTES + 1):
            cluster = self._cluster.get()
            if self._stale:
                cluster.nodes_manager.initialize()
                self._stale = False
            try:
                node = cluster.get_node_from_key(key)
                if node is None:
                    raise redis.exceptions.SlotNotCoveredError(f"no node serves slot {cluster.keyslot(key)}")
                commands = commands_for(cluster.get_redis_connection(node))
                assert isinstance(commands, Commands)
                return call(commands)
            except (redis.exceptions.MovedError, redis.exceptions.AskError,
                    redis.exceptions.SlotNotCoveredError):
                if attempt == self.REROUTES:
                    raise
                self._stale = True  # the slots moved: ask the cluster again, then send it again
            except (redis.ConnectionError, redis.TimeoutError):
                self._stale = True  # never sent again (it may have run); the next command asks first
                raise
        raise AssertionError("unreachable")

    def execute(self, *args: Any) -> Any:
        """One command; ``args[1]`` is its key."""
        return self._route(args[1], lambda commands: commands.execute(*args))

    def execute_many(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Commands on keys of one slot (the first command's key routes them all)."""
        return self._route(commands[0][1], lambda on: on.execute_many(*commands))

    def run_script(self, script: LuaScript, keys: Sequence[str], args: Sequence[str]) -> Any:
        """A script on keys of one slot (its first key routes it)."""
        return self._route(keys[0], lambda commands: commands.run_script(script, keys, args))


def _pack(connection: Connection, commands: Sequence[tuple[Any, ...]], hiredis: bool) -> list[bytes]:
    """The wire form of ``commands`` (str, bytes and int arguments), one buffer per command or for them all."""
    if hiredis:
        assert _hiredis_pack is not None
        try:
            if len(commands) == 1:
                return [_hiredis_pack(commands[0])]
            return [b"".join([_hiredis_pack(command) for command in commands])]
        except TypeError:  # an argument of another type: redis-py's packer says what it makes of it
            pass
    if len(commands) == 1:
        return connection.pack_command(*commands[0])
    return connection.pack_commands(commands)


def commands_for(client: redis.Redis[bytes] | LazyCluster) -> Commands | ClusterCommands:
    """The :class:`Commands` of a client (one per client, kept on it); a cluster's :class:`ClusterCommands`."""
    commands: Commands | ClusterCommands | None = getattr(client, "_wsgisession_commands", None)
    if commands is None:
        commands = Commands(client) if isinstance(client, redis.Redis) else ClusterCommands(client)
        setattr(client, "_wsgisession_commands", commands)  # noqa: B010
    return commands
