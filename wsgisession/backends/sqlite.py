"""The SQLite store: every session a row of one database file; its write transaction is the cross-process lock.

The database is ``<data_dir>/wsgisession.sqlite3``, or the file named by
``url`` (a path, or SQLAlchemy's spelling ``sqlite:///relative/path`` and
``sqlite:////absolute/path``), made 0600 in a 0700 directory. It runs in WAL
mode with ``synchronous = NORMAL``: a commit appends to the write-ahead log
without waiting for the disk, readers never wait for the writer, and after an
operating-system crash (not a process crash) the last commits may be lost, never
half-made. One table, ``wsgisession_records (namespace, key, value, expires)``:
``value`` is the text stored, verbatim (never unpickled: a value that is not
text reads as none); ``expires`` (Unix time, indexed) is when the row may go.

A transaction is SQLite's own: ``BEGIN IMMEDIATE`` takes the database's write
lock, shared by every process on the host, then reads the session; the commit
makes the staged write and ``COMMIT`` frees the lock. The lock is never waited
for inside SQLite (``busy_timeout = 0``): a process that finds it taken polls
with gevent sleeps, bounded by ``lock_timeout``, ending in
:class:`~wsgisession.errors.LockTimeout`. Inside one process, greenlets queue
for the write connection on a gevent semaphore first. The lock covers the
whole database, not one session: a holder that waits on I/O inside
``atomic()`` holds up every save of the host meanwhile (the file and Redis
stores lock one session).

Commits are grouped. A ``COMMIT`` appends the changed pages to the log and
takes and frees SQLite's file locks (six ``fcntl`` and two ``pwrite`` calls); so
a transaction that ends well leaves its ``COMMIT`` to the event loop's next
turn. The transactions of the greenlets that run before it go on in the same
SQLite transaction (one that fails undoes only its own writes: a savepoint
where it makes more than one), and one ``COMMIT`` makes them all durable (at most
``GROUP_MAX``). Each waits for it before it is told saved (its after-commit
callbacks, the answer to its request or event); a ``COMMIT`` that fails fails
them all, and nothing of theirs is stored. A process whose transactions find
no company commits them at once, looking again for company once in
``GROUP_PROBE``. The price: a group holds the database's lock until the loop's
next turn (or until a holder in it that waits on I/O ends: a save whose group
has not committed ``lock_timeout`` after it began gets LockTimeout, its outcome
unknown), and reads while a group is open go to the read connection (if they find
no row kept, below), whose page cache every commit empties.
Reads at other times use the write connection, whose cache stays warm.

The rows this process last read or committed are kept (at most ``KNOWN_MAX``,
each at most ``KNOWN_VALUE_MAX`` characters) for as long as no other connection
commits. A transaction checks that with ``PRAGMA data_version`` once it has the
write lock, and the group's later transactions need no check: no other process
can commit while the lock is held. So a read-modify-write in a group reads its
row from memory, not with a ``SELECT``. A read outside any transaction checks
first if it has the row kept (else it reads and keeps it). Only committed writes
are kept (one that is rolled back, or whose group fails, is forgotten), and a
sweep or a namespace's removal forgets them all. Where other processes commit
between nearly all of this one's transactions (several busy workers), a check
costs more than the ``SELECT`` it saves: after ``KNOWN_STALE`` checks in a row
that found another's commit, the process stops checking and keeping, and tries
again once in ``KNOWN_PROBE``.

Every ``CHECKPOINT_EVERY`` transactions, threads of gevent's pool copy the log
into the database and see that the next commit writes the log from its start
(:meth:`Database._checkpoint`): it stays a few MB under a steady load.

Expired rows are swept by one bounded ``DELETE`` (at most ``PURGE_LIMIT`` rows,
through the ``expires`` index), run in the transaction of a write at most once
per ``PURGE_INTERVAL`` (sooner while a sweep finds a full batch). A row is
swept ``PURGE_GRACE`` seconds past its ``expires``, so that sockets of an
expired session still learn ``expired``, not ``logout``.

A database that cannot be opened, is not a database, is read-only or holds a
table of another shape is a :class:`~wsgisession.errors.ConfigurationError` at
start-up. At run time SQLite's errors are
:class:`~wsgisession.errors.StoreUnavailable` with SQLite's message: a full
disk fails the save, which is rolled back, so the stored session stays as it was.
"""
from __future__ import annotations

import errno
import logging
import os
import random
import sqlite3
import sys
import time
import weakref
from typing import Any, Callable, TypeVar

import gevent.lock
from beaker.container import NamespaceManager
from gevent import getcurrent
from greenlet import greenlet

from ..errors import ConfigurationError, LockTimeout, StoreUnavailable
from ..ids import is_session_id
from ..locks import POLL_MIN, backoff, timeout_message
from .base import KEY, Backend, Transaction

log = logging.getLogger(__name__)

#: the database's file name under ``data_dir``
FILE_NAME = "wsgisession.sqlite3"
TABLE = "wsgisession_records"
COLUMNS = ["namespace", "key", "value", "expires"]
#: the most rows one sweep deletes, and how often (seconds) writes run one; rows go this long past ``expires``
PURGE_LIMIT = 100
PURGE_INTERVAL = 60.0
PURGE_GRACE = 300.0
#: transactions committed between two checkpoints of the write-ahead log into the database (run in a thread).
#: Speed: a checkpoint copies each page changed since the last one once, however often it changed, and then
#: the log starts again: 1,000 (up to ~4 MB of log where a commit changes one page) cost 16% less CPU per
#: grouped transaction than 200 (50 greenlets saving through the store, 2026-12-03)
CHECKPOINT_EVERY = 1000
#: how long (seconds) a checkpoint's RESTART waits for other processes' writers and readers of the log
RESTART_BUSY = 0.2
#: how far (seconds) a write may leave a row's ``expires`` behind the one it asks for (less than PURGE_GRACE)
EXPIRES_STEP = 60.0
#: the most transactions one group commit makes durable at once (0: every transaction commits alone)
GROUP_MAX = 32
#: after this many group commits in a row that gathered no other transaction, transactions commit alone...
GROUP_LONE = 2
#: ...but one in this many tries to gather others again
GROUP_PROBE = 8
#: rows kept in memory while no other connection commits (module documentation), and the longest value kept.
#: Speed: a socket incr on SQLite read its row with a SELECT, ~13.6k of its ~130k instructions in process
KNOWN_MAX = 2048
KNOWN_VALUE_MAX = 8192
#: after this many checks in a row that found another connection's commit, no more checks...
KNOWN_STALE = 3
#: ...but one in this many transactions or reads checks again
KNOWN_PROBE = 64
#: the savepoint a transaction that joins a group sets before its first write (its own rollback undoes only it)
_SAVEPOINT = "wsgisession_holder"

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "expires REAL, PRIMARY KEY (namespace, key)) WITHOUT ROWID",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE} (expires) WHERE expires IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS wsgisession_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)
_READ = f"SELECT value FROM {TABLE} WHERE namespace = ? AND key = ?"
# Speed: a write that leaves ``expires`` alone does not touch its index: 6.7 us per update
# transaction instead of 15 (an upsert; measured in process, 2026-12-03). So a row keeps its
# ``expires`` while the new one is less than EXPIRES_STEP later (rows are swept only
# PURGE_GRACE > EXPIRES_STEP past it, never before they expire); else it is updated, or inserted.
_WRITE_VALUE = f"UPDATE {TABLE} SET value = ? WHERE namespace = ? AND key = ? AND expires BETWEEN ? AND ?"
_WRITE_VALUE_LASTING = f"UPDATE {TABLE} SET value = ? WHERE namespace = ? AND key = ? AND expires IS NULL"
_WRITE_ROW = f"UPDATE {TABLE} SET value = ?, expires = ? WHERE namespace = ? AND key = ?"
_INSERT = f"INSERT INTO {TABLE} (namespace, key, value, expires) VALUES (?, ?, ?, ?)"
_DELETE = f"DELETE FROM {TABLE} WHERE namespace = ? AND key = ?"
_DELETE_NAMESPACE = f"DELETE FROM {TABLE} WHERE namespace = ?"
_KEYS = f"SELECT key FROM {TABLE} WHERE namespace = ? ORDER BY key"
_PURGE = (
    f"DELETE FROM {TABLE} WHERE (namespace, key) IN "
    f"(SELECT namespace, key FROM {TABLE} WHERE expires < ? LIMIT ?)"
)

_T = TypeVar("_T")
_UNKNOWN = object()

#: the databases of this process, for forgetting their connections in a forked child
_open: weakref.WeakSet[Database] = weakref.WeakSet()
#: connections inherited through fork: never used nor closed in the child (closing could end the parent's WAL)
_inherited: list[sqlite3.Connection] = []


def _before_fork() -> None:
    """Close the connections of every database that is idle: none of SQLite's state for the file crosses the fork.

    SQLite keeps, per process, which locks a file's connections hold. A child
    inherits that record but not the locks (POSIX locks are the process's), so its
    new connections believed they held the database's shared lock and took none:
    once the parent closed its connection, another process that then opened and
    closed the database found no other user, and checkpointed and deleted the
    write-ahead log under the child (its later commits lost, the database
    corrupted). With every connection closed, the child starts afresh and takes
    its own locks; the parent opens new connections at its next use. A database
    in use (a transaction, a group, a checkpoint) is left open: the child forgets
    its connections (:func:`_after_fork`).
    """
    for database in list(_open):
        if database._owner is None and database._group is None and not database._checkpointing:
            database.close()


def _after_fork() -> None:
    for database in list(_open):
        _inherited.extend(c for c in (database._reader, database._writer, database._checkpointer) if c is not None)
        database._connections.clear()  # nor closed when the database is collected
        database._reader = database._writer = database._checkpointer = None
        database._checkpointing = False
        database._read_cursor = database._write_cursor = None
        database._owner, database._owned, database._depth = None, 0, 0
        database._semaphore = gevent.lock.Semaphore(1)
        if database._group is not None:  # the parent's group is the parent's to commit; its timer is not ours
            database._group._timer.close()  # noqa: SLF001
        database._group, database._marked = None, False
        database._forget_known()  # the child's connection is new: its data_version starts afresh


os.register_at_fork(before=_before_fork, after_in_child=_after_fork)


def _close_connections(connections: list[sqlite3.Connection]) -> None:
    """Close the connections of a database that was collected (they would wait for the garbage collector)."""
    for connection in connections:
        try:
            connection.close()
        except sqlite3.Error as exc:
            log.debug("could not close a connection of a collected SQLite store: %s", exc)
    connections.clear()


def database_path(*, data_dir: str | None = None, url: str | None = None) -> str:
    """The database file of a configuration: ``url`` (a path or ``sqlite:///path``), else under ``data_dir``."""
    if url:
        path = url
        if "://" in url:
            scheme, _, rest = url.partition("://")
            if scheme != "sqlite" or not rest.startswith("/") or rest == "/":
                raise ConfigurationError(
                    f"url {url!r} is not a SQLite database: give a path, or sqlite:///relative/path or "
                    "sqlite:////absolute/path", key="url", value=url,
                )
            path = rest[1:]
        if path == ":memory:" or path.startswith("file:"):
            raise ConfigurationError(
                f"url {url!r}: the SQLite store needs a database file (type = memory keeps sessions in memory)",
                key="url", value=url,
            )
        return path
    if not data_dir:
        raise ConfigurationError("the SQLite store needs data_dir (or url, the database file)", key="data_dir")
    return os.path.join(data_dir, FILE_NAME)


def _busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED)."""
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    )


class Group:
    """Transactions that ended in one open SQLite transaction, waiting for the ``COMMIT`` that makes them durable.

    Its first member began the transaction (``BEGIN IMMEDIATE``); the others
    went on in it (a savepoint before a write nested in one). One ``COMMIT`` makes
    them all durable, or none of them. Its members wait at most ``timeout``
    seconds from its start (one timer for them all).
    """

    __slots__ = ("members", "closing", "error", "ended", "timed_out", "timeout", "_hub", "_waiters", "_timer")

    def __init__(self, timeout: float) -> None:
        self.members = 0  # transactions waiting for the COMMIT
        self.closing = False  # the commit was due while a transaction was open in it: its end commits
        self.error: sqlite3.Error | None = None
        self.ended = False  # the COMMIT ran (error: it failed)
        self.timed_out = False  # its members' wait ended before it did
        self.timeout = timeout
        # Speed: each waiting member parks on the event loop itself (the hub), listed here, and one callback
        # of the loop switches back to them all. A gevent Event ran its wait through a Python-level dummy
        # Timeout and a link per member: an acked socket incr cost 410.4k server instructions, 405.1k with
        # a gevent Waiter per member (callgrind.py, 50 sockets, 2026-12-03); without the Waiter, 117.3k ->
        # 115.5k per socket incr in process (benchmarks/greenlets.py, 2026-12-08)
        self._hub = hub = gevent.get_hub()
        self._waiters: list[greenlet] = []
        # Speed: one timer for the group. A timeout per wait (Event.wait(timeout)) made, started and
        # stopped a gevent Timeout per member: 126k instructions per grouped transaction, 106k with one
        # timer (callgrind, 50 greenlets saving through the store, 2026-12-03)
        self._timer = hub.loop.timer(timeout)
        self._timer.start(self._time_out)

    def end(self, error: BaseException | None = None) -> None:
        """Tell the members how the ``COMMIT`` went (``error``: it failed, nothing of theirs is stored)."""
        if error is not None and not isinstance(error, sqlite3.Error):
            error = sqlite3.OperationalError(f"the commit did not complete: {error!r}")
        self.error = error
        self.ended = True
        self._timer.close()
        if self._waiters:  # they go on at the loop's next turn (never inside the commit that ends the group)
            self._hub.loop.run_callback(self._wake)

    def _time_out(self) -> None:
        """The timer (in the event loop): the members still waiting stop waiting."""
        self.timed_out = True
        self._wake()

    def _wake(self) -> None:
        """In the event loop: switch back to every member waiting (each runs until it waits again)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            try:
                waiter.switch()
            except BaseException:  # as a gevent Waiter does: the loop reports it, and the others still go on
                self._hub.handle_error(waiter, *sys.exc_info())

    def wait(self) -> None:
        """Until the group's ``COMMIT`` ran; its error if it failed; LockTimeout ``timeout`` seconds after its start.

        The ``COMMIT`` waits for a transaction still open in the group (one that
        waits on I/O inside ``atomic()``): past ``timeout`` the save is not known to
        be durable, and it may yet be, or not, when that transaction ends.
        """
        if not (self.ended or self.timed_out):
            current = getcurrent()
            self._waiters.append(current)
            try:
                while not (self.ended or self.timed_out):  # only _wake (or a throw) switches back here
                    self._hub.switch()
            except BaseException:  # killed, or the caller's gevent.Timeout, while waiting: never switched to again
                if current in self._waiters:
                    self._waiters.remove(current)
                raise
        if not self.ended:
            timeout = self.timeout
            raise LockTimeout(
                f"the save waited {timeout:.3g}s for its commit, held up by another transaction of this "
                "process (I/O inside atomic()?); it is not known to be stored", timeout=timeout,
            )
        error = self.error
        if error is not None:
            raise sqlite3.OperationalError(*error.args) from error


class Database:
    """One SQLite database file, for this process: a connection that reads, one that writes, and the write lock.

    Greenlets take the write connection in turn (a gevent semaphore, reentrant
    per greenlet); the first of them takes the database's write lock
    (``BEGIN IMMEDIATE``, polled), which other processes then wait for.

    A transaction that ends well may leave its ``COMMIT`` to a :class:`Group`
    (the module's documentation says when): :meth:`release` returns it, and
    its member waits for it (:meth:`Group.wait`) before anything is told of its write.
    """

    # Speed: slots. A 30th attribute (tried 2026-12-07) cost every transaction ~2.4k more instructions (a socket
    # incr in process, 121.3k -> 123.7k): past CPython's 30 shared keys an instance's attributes are a dict of its own
    __slots__ = (
        "path", "lock_timeout", "_key", "_semaphore", "_owner", "_owned", "_depth", "_reader", "_writer",
        "_checkpointer", "_read_cursor", "_write_cursor", "_group", "_marked", "_lone", "_alone",
        "_commits", "_checkpointing", "checkpoints", "restarts", "purge_at", "_known", "_staged", "_version",
        "_fresh", "_forget_all", "_stale", "_skipped", "_connections", "__weakref__",
    )

    def __init__(self, path: str, *, lock_timeout: float = 10.0, key: str = "data_dir") -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._key = key  # the setting that named the file, for errors at start-up
        self._semaphore = gevent.lock.Semaphore(1)
        self._owner: object = None  # the greenlet that holds the write connection
        self._owned = 0  # how many holdings (reserve) it has
        self._depth = 0  # how deep its SQL transaction is nested (hold)
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        # Speed: one cursor per connection, reused (a connection's execute() makes a cursor each time:
        # ~0.9 us of a 7.4 us update transaction, measured in process, 2026-12-03)
        self._read_cursor: sqlite3.Cursor | None = None
        self._write_cursor: sqlite3.Cursor | None = None
        self._checkpointer: sqlite3.Connection | None = None  # used by one thread of gevent's pool at a time
        self._group: Group | None = None  # transactions waiting in the open transaction for its COMMIT
        self._marked = False  # the holder, in a group's transaction, set its savepoint
        self._lone = 0  # group commits in a row that gathered no other transaction
        self._alone = 0  # commits made alone since the last group
        self._checkpointing = False
        self._commits = 0  # since the last checkpoint
        # rows this process knows to be the database's as of the write connection's data_version _version
        # (the module's documentation): (namespace, key) -> value
        self._known: dict[tuple[str, str], str] = {}
        self._staged: dict[tuple[str, str], str | None] = {}  # the open transaction's writes, kept once committed
        self._version: int | None = None
        self._fresh = False  # our write transaction is open and found _known valid: no one else can commit
        self._forget_all = False  # the open transaction deleted rows it does not name: forget all at its commit
        self._stale = 0  # checks in a row that found another connection's commit
        self._skipped = 0  # checks skipped since the last (when stale)
        #: checkpoints this process made (the write-ahead log copied into the database)
        self.checkpoints = 0
        #: of those, how many were followed by a RESTART one (the next commit started the log afresh)
        self.restarts = 0
        #: Unix time from which the next write sweeps expired rows (processes spread theirs)
        self.purge_at = time.time() + random.uniform(0, PURGE_INTERVAL)
        # Every connection open now, closed as soon as this database is collected. A sqlite3 connection
        # is in a reference cycle of its own (its statement cache holds it): dropped, it stayed open until
        # the garbage collector's next pass, in a parent forking its workers meanwhile too, so a worker
        # forked before that pass inherited SQLite's record of its locks (_before_fork). Then, once the
        # pass closed it, the next worker to open the database found nobody holding its shared memory and
        # truncated it under the first: SIGBUS (benchmarks/sqlite_processes.py, one run in nine).
        self._connections: list[sqlite3.Connection] = []
        weakref.finalize(self, _close_connections, self._connections)
        self.open()
        _open.add(self)

    # -- connections -----------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # isolation_level None: no implicit transactions, ours are explicit; timeout 0: never block in SQLite
        connection = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            # a pragma reads the schema first: busy while another process makes a new database WAL
            self._retry(lambda: connection.execute("PRAGMA synchronous = NORMAL"),
                        time.monotonic() + self.lock_timeout)
            # Speed: no checkpoint inside a commit. SQLite's automatic one (every 1,000 pages of log)
            # copies the log into the database and fsyncs it in the commit that crosses the mark:
            # 5-12 ms with the gevent loop stopped, measured here (2026-12-03). Ours runs in a thread.
            connection.execute("PRAGMA wal_autocheckpoint = 0")
            # Speed: a savepoint's journal (the pages it may have to restore) stays in memory. By default
            # SQLite spills it to a temporary file past 64 KiB: with a group of 32, 1.0 pwrite per grouped
            # transaction instead of 3.5 (strace, 50 greenlets saving, 2026-12-03).
            connection.execute("PRAGMA temp_store = MEMORY")
        except BaseException:
            connection.close()
            raise
        self._connections.append(connection)
        return connection

    def reader(self) -> sqlite3.Connection:
        connection = self._reader
        if connection is None:
            connection = self._reader = self._connect()
            self._read_cursor = connection.cursor()
        return connection

    def writer(self) -> sqlite3.Connection:
        connection = self._writer
        if connection is None:
            connection = self._writer = self._connect()
            self._write_cursor = connection.cursor()
        return connection

    def read_cursor(self) -> sqlite3.Cursor:
        cursor = self._read_cursor
        if cursor is None:
            self.reader()
            cursor = self._read_cursor
            assert cursor is not None
        return cursor

    def write_cursor(self) -> sqlite3.Cursor:
        cursor = self._write_cursor
        if cursor is None:
            self.writer()
            cursor = self._write_cursor
            assert cursor is not None
        return cursor

    def open(self) -> None:
        """Open (or create) the database and check it can serve: ConfigurationError if not."""
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            self._create()
        except OSError as exc:
            raise ConfigurationError(
                f"the SQLite session store cannot open {self.path}: {exc.strerror}", key=self._key, value=self.path
            ) from exc
        deadline = time.monotonic() + self.lock_timeout
        try:
            writer = self.writer()
            mode = self._retry(lambda: writer.execute("PRAGMA journal_mode = WAL").fetchall()[0][0], deadline)
            if str(mode).lower() != "wal":
                raise ConfigurationError(
                    f"the SQLite session store {self.path} cannot use WAL (journal mode {mode}): "
                    "put it on a local file system", key=self._key, value=self.path,
                )
            self._retry(lambda: self._prepare(writer), deadline)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ConfigurationError(
                f"the SQLite session store {self.path} is not usable: {exc}", key=self._key, value=self.path
            ) from exc
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        """Create the database file, private (0600), if there is none; never open one that exists.

        Closing any descriptor of a file drops every POSIX lock this process holds
        on it, and SQLite's connections to it in this process (another store's on
        the same file) keep a shared lock on the database for as long as they are
        open: it tells another process closing its last connection that the
        write-ahead log is still in use. Opened and closed here, an existing file
        lost that lock; the next process to close found no other user and deleted
        the log under this one's connections: their later commits were lost.
        SQLite itself keeps such descriptors open while its locks stand.
        """
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            if os.path.isdir(self.path):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.path) from None
            if not os.access(self.path, os.R_OK | os.W_OK):  # an error of its own, as opening it would give
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), self.path) from None

    def _prepare(self, writer: sqlite3.Connection) -> None:
        writer.execute("BEGIN IMMEDIATE")  # also proves the file writable
        try:
            writer.execute(_SCHEMA[0])
            columns = [row[1] for row in writer.execute(f"PRAGMA table_info({TABLE})").fetchall()]
            if columns != COLUMNS:
                raise ConfigurationError(
                    f"the SQLite session store {self.path} has a {TABLE} table that is not ours "
                    f"(columns {', '.join(columns)})", key=self._key, value=self.path,
                )
            for statement in _SCHEMA[1:]:
                writer.execute(statement)
            writer.execute(f"SELECT 1 FROM {TABLE} LIMIT 1").fetchall()
            writer.execute("INSERT OR REPLACE INTO wsgisession_meta (name, value) VALUES ('schema', '1')")
            writer.execute("COMMIT")
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this process's connections (they reopen on the next use)."""
        self._forget_known()
        group, self._group = self._group, None
        if group is not None:  # closing rolls its transaction back
            group.end(sqlite3.OperationalError("the session store was closed before the commit"))
        for connection in (self._reader, self._writer, None if self._checkpointing else self._checkpointer):
            if connection is not None:
                connection.close()
                self._connections.remove(connection)
        self._reader = self._writer = None
        if not self._checkpointing:
            self._checkpointer = None
        self._read_cursor = self._write_cursor = None

    # -- rows kept -------------------------------------------------------
    def _check(self, cursor: sqlite3.Cursor) -> bool:
        """Whether the rows kept are still the database's (``PRAGMA data_version``); if not, forget them.

        Under the write lock the answer holds until the transaction ends; else
        for the moment. ``False`` without a check while stale (``KNOWN_STALE``),
        but for one call in ``KNOWN_PROBE``.
        """
        if self._stale >= KNOWN_STALE:
            self._skipped += 1
            if self._skipped < KNOWN_PROBE:
                return False
            self._skipped = self._stale = 0  # try again: _version is None, so this check starts afresh
        try:
            version = cursor.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:  # only a shortcut fails: what follows reads the database (and fails, if it does)
            log.debug("could not check %s for other connections' commits: %s", self.path, exc)
            self._known.clear()
            self._version = None
            return False
        if version == self._version:
            self._stale = 0
            return True
        self._known.clear()
        self._stale += 1
        if self._stale >= KNOWN_STALE:  # others commit between nearly all our checks: stop for a while
            self._version = None  # and the next check forgets whatever was kept meanwhile
            return False
        self._version = version
        return True

    def _keep(self, row: tuple[str, str], value: str) -> None:
        """Keep a row read or committed (the oldest kept goes past ``KNOWN_MAX``)."""
        known = self._known
        if len(value) > KNOWN_VALUE_MAX:
            known.pop(row, None)
            return
        if len(known) >= KNOWN_MAX and row not in known:
            del known[next(iter(known))]
        known[row] = value

    def _committed(self) -> None:
        """The open transaction committed: keep what it wrote (a row it may have changed otherwise is forgotten)."""
        self._fresh = False
        staged = self._staged
        if self._forget_all:  # a sweep or a namespace's removal: rows it deleted may be kept
            self._forget_all = False
            self._known.clear()
        else:
            for row, value in staged.items():
                if value is None:  # removed, or changed in a way not known
                    self._known.pop(row, None)
                else:
                    self._keep(row, value)
        staged.clear()

    def _rolled_back(self) -> None:
        """The open transaction was rolled back: what is kept is the database's again (committed rows only)."""
        self._fresh = self._forget_all = False
        self._staged.clear()

    def _forget_known(self) -> None:
        """Keep nothing: the write connection is gone (or new)."""
        self._known.clear()
        self._rolled_back()
        self._version = None

    def _retry(self, operation: Callable[[], _T], deadline: float) -> _T:
        """Run ``operation``; while another connection holds the lock, again after a gevent sleep, until ``deadline``."""
        poll = POLL_MIN
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
            poll = backoff(poll)

    # -- reads -----------------------------------------------------------
    def read(self, namespace: str, key: str) -> str | None:
        """The text stored under ``(namespace, key)``; ``None`` if none (or not text: not ours)."""
        row = (namespace, key)
        cursor: sqlite3.Cursor | None = None
        if self._fresh:  # a transaction of ours holds the write lock: no other connection can commit
            value = self._known.get(row)  # committed rows (not the open transaction's writes)
            if value is not None:
                return value
            keep = True
        elif self._owner is None and self._group is None:
            # the write connection while no transaction is open on it: its page cache is warm (its own commits
            # leave it valid); the read connection's is emptied by every commit of another connection
            cursor = self._write_cursor
            # a row not kept is read without a check (and kept: it is the database's now, and a commit of
            # another connection after the last check changes data_version for the next one)
            if cursor is not None and row in self._known and self._check(cursor):
                value = self._known.get(row)  # gone if the check found another's commit
                if value is not None:
                    return value
            keep = self._stale < KNOWN_STALE
        else:
            keep = False
        try:
            rows = (cursor or self.read_cursor()).execute(_READ, row).fetchall()  # ends here
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            deadline = time.monotonic() + self.lock_timeout
            rows = self._retry(lambda: self.read_cursor().execute(_READ, row).fetchall(), deadline)
        if not rows:
            return None
        value = rows[0][0]
        if not isinstance(value, str):  # a BLOB (a planted pickle?): no session, never unpickled
            log.warning("ignoring a session record that is not text")
            return None
        if keep:  # committed, read since the last check (which a commit of another connection since then fails)
            self._keep(row, value)
        return value

    def read_held(self, cursor: sqlite3.Cursor, namespace: str, key: str) -> str | None:
        """The text of a row in the transaction held (``cursor``, :meth:`hold`'s): as kept, or read."""
        row = (namespace, key)
        keep = False
        if self._fresh and not self._forget_all:  # (after a sweep, say, a row kept may be gone in this transaction)
            staged = self._staged.get(row, _UNKNOWN)
            if isinstance(staged, str):  # this transaction's own write
                return staged
            if staged is _UNKNOWN:  # not written in this transaction: as committed
                value = self._known.get(row)
                if value is not None:
                    return value
                keep = True
            # else changed in this transaction, how is not known: read (and not kept: it is not committed)
        rows = cursor.execute(_READ, row).fetchall()
        if not rows:
            return None
        value = rows[0][0]
        if not isinstance(value, str):  # a BLOB (a planted pickle?): no session, never unpickled
            return None
        if keep:
            self._keep(row, value)
        return value

    def keys(self, namespace: str) -> list[str]:
        return [str(row[0]) for row in self.reader().execute(_KEYS, (namespace,)).fetchall()]

    # -- the write lock --------------------------------------------------
    def reserve(self, timeout: float) -> float:
        """Own the write connection (reentrant per greenlet), waiting in turn within ``timeout``; seconds waited.

        The store takes it before a session's own lock (:meth:`Backend.reserve`):
        the database's lock covers every session, so taken after them it could
        meet a holder that waits for one of them (a user's index, say).
        """
        current = getcurrent()
        if self._owner is current:
            self._owned += 1
            return 0.0
        semaphore = self._semaphore
        waited = 0.0
        if not semaphore.acquire(False):  # another greenlet of this process holds it: wait in turn
            started = time.monotonic()
            if not semaphore.acquire(timeout=timeout):
                raise LockTimeout(timeout_message(timeout), timeout=timeout)
            waited = time.monotonic() - started
        self._owner, self._owned = current, 1
        return waited

    def unreserve(self) -> None:
        """Give back one :meth:`reserve`."""
        self._owned -= 1
        if not self._owned:
            self._owner = None
            self._semaphore.release()

    def hold(self, timeout: float) -> sqlite3.Cursor:
        """Own the write connection and take the database's write lock within ``timeout``; :meth:`release` it.

        Returns the write connection's cursor. Reentrant: a greenlet that holds
        it already goes on in its transaction.
        """
        # Speed: the reentrant case (the store reserved the connection for this greenlet) without a call
        if self._owner is getcurrent():
            self._owned += 1
            waited = 0.0
        else:
            waited = self.reserve(timeout)
        self._depth += 1
        cursor = self._write_cursor or self.write_cursor()
        if self._depth > 1:
            return cursor
        if self._group is not None:  # a group's transaction is open: go on in it (the lock is ours)
            return cursor
        try:
            started = 0.0
            poll = POLL_MIN
            while True:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                else:  # the write lock is ours: whether the rows kept are the database's holds until the end
                    self._fresh = self._check(cursor)
                    return cursor
                now = time.monotonic()
                if not started:
                    started = now - waited
                elif now - started >= timeout:
                    raise LockTimeout(timeout_message(timeout), timeout=timeout)
                poll = backoff(poll)
        except BaseException:
            self._depth -= 1
            self.unreserve()
            raise

    def release(self, commit: bool = True) -> Group | None:
        """End one :meth:`hold`; the outermost commits (or rolls back) and frees the database's lock.

        A commit may be left to a group (:class:`Group`), then returned: wait
        for it (:meth:`Group.wait`) once every lock is given back, before the
        write is told to anyone. ``None``: committed (or rolled back) already.
        """
        self._depth -= 1
        try:
            if self._depth:
                return None
            cursor = self._write_cursor
            group = self._group
            marked, self._marked = self._marked, False
            if cursor is None or not cursor.connection.in_transaction:  # SQLite rolled back after an error
                self._abort(cursor, sqlite3.OperationalError("the transaction was rolled back after an error"))
                return None
            if not commit:
                if group is None:
                    self._rolled_back()
                    cursor.execute("ROLLBACK")
                    return None
                if marked:  # undo this holder's writes only: the group's stay
                    self._undo(cursor)
                if group.closing:  # its commit was due while this holder was in it
                    self._commit_group()
                return None
            if group is None:
                if self._should_group():
                    group = self._group = Group(self.lock_timeout)
                    group.members = 1
                    gevent.get_hub().loop.run_callback(self._flush)
                    return group
            elif not group.closing and group.members < GROUP_MAX and getcurrent() is not gevent.get_hub():
                group.members += 1
                return group
            self._commit(cursor, 1)  # this transaction, with the group's if any
            return None
        finally:
            self.unreserve()

    def _should_group(self) -> bool:
        """Whether this greenlet's commit starts a group: it waits for the event loop's next turn."""
        if not GROUP_MAX:
            return False
        if getcurrent() is gevent.get_hub():  # the event loop itself: it cannot wait for its next turn
            return False
        if self._lone < GROUP_LONE:
            return True
        self._alone += 1  # alone lately: commit at once, trying again now and then
        if self._alone < GROUP_PROBE:
            return False
        self._alone = 0
        return True

    def _undo(self, cursor: sqlite3.Cursor) -> None:
        """Roll back to this holder's savepoint; if that fails, the whole group's transaction."""
        staged = self._staged
        for row in staged:  # which of them the holder wrote (and what they hold now) is not known
            staged[row] = None
        try:
            cursor.execute(f"ROLLBACK TO {_SAVEPOINT}")
        except BaseException as exc:
            self._abort(cursor, exc)
            raise

    def _abort(self, cursor: sqlite3.Cursor | None, error: BaseException) -> None:
        """Roll the open transaction back (if SQLite has not); its group, if any, fails with ``error``."""
        group, self._group = self._group, None
        self._rolled_back()
        try:
            if cursor is not None and cursor.connection.in_transaction:
                cursor.execute("ROLLBACK")
        finally:
            if group is not None:
                group.end(error)

    def mark(self, cursor: sqlite3.Cursor) -> None:
        """Before a write nested in a holder's transaction in a group's: the holder's savepoint, once.

        The holder's own write may fail after it; that must undo both. A holder's
        one write needs none: a statement that fails changes nothing, or SQLite
        rolls the whole transaction back (and the group fails). Speed: a savepoint
        costs a statement, ~8% of a grouped transaction's instructions.
        """
        if self._depth > 1 and self._group is not None and not self._marked:
            cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
            self._marked = True

    def _commit(self, cursor: sqlite3.Cursor, holders: int) -> None:
        """``COMMIT`` the open transaction: ``holders`` (the one ending now, or none) and the group's."""
        try:
            cursor.execute("COMMIT")
        except BaseException as exc:
            self._abort(cursor, exc)
            raise
        self._committed()
        group, self._group = self._group, None
        committed = holders
        if group is not None:
            committed += group.members
            self._lone = self._lone + 1 if committed <= 1 else 0
            group.end()
        self._commits += committed
        if self._commits >= CHECKPOINT_EVERY:
            self._checkpoint_soon()

    def _flush(self) -> None:
        """The event loop's turn came: commit the group (or, if a holder is in its transaction, let its end)."""
        group = self._group
        if group is None:
            return
        if self._depth:  # a holder went on in the transaction and waits on I/O: its release commits
            group.closing = True
            return
        self._commit_group()

    def _commit_group(self) -> None:
        """Commit the group's transaction, no holder in it; a failure is the members' to raise."""
        cursor = self._write_cursor
        if cursor is None or not cursor.connection.in_transaction:
            self._abort(cursor, sqlite3.OperationalError("the transaction was rolled back before its commit"))
            return
        try:
            self._commit(cursor, 0)
        except Exception as exc:
            log.debug("a group commit of %s failed: %s", self.path, exc)

    # -- checkpoints -------------------------------------------------------
    def _checkpoint_soon(self) -> None:
        """Start a checkpoint in a greenlet of its own (its copying runs in threads of gevent's pool)."""
        if self._checkpointing:
            return
        self._commits, self._checkpointing = 0, True
        gevent.spawn(self._checkpoint)

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database, then see that the next commit starts the log afresh.

        A passive checkpoint copies what the log holds while writers go on. SQLite
        starts the log again only at a write transaction that begins with all of it
        copied, which a passive checkpoint under a steady load never leaves (the
        frames committed while it ran stay to copy): the log grew without end, 50 MB
        after 100,000 transactions of 50 greenlets, and every read searched more of
        it. So then, this process's writers held back (the write connection
        reserved, within ``lock_timeout``), a ``RESTART`` checkpoint copies what they
        added meanwhile and waits up to ``RESTART_BUSY`` for other processes' writers
        and readers; the next commit writes the log from its start.
        """
        pool = gevent.get_hub().threadpool
        try:
            if pool.apply(self.checkpoint, ("PASSIVE",)) is None:
                return
            try:
                self.reserve(self.lock_timeout)
            except LockTimeout:
                return
            try:
                pool.apply(self.checkpoint, ("RESTART",))
            finally:
                self.unreserve()
        except Exception as exc:  # no thread to be had, say: the next commits try again
            log.warning("could not checkpoint %s: %s", self.path, exc)
        finally:
            self._checkpointing = False

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int] | None:
        """One checkpoint on a connection of its own, in a thread: SQLite's (busy, log frames, frames copied).

        ``PASSIVE`` waits for no one; ``RESTART`` waits up to ``RESTART_BUSY`` for the
        write lock and for readers of the log, then lets the next writer restart it.
        ``None``: it did not run (busy, or the store is failing: the next one tries again).
        """
        try:
            connection = self._checkpointer
            if connection is None:
                connection = self._checkpointer = self._connect()
            waits = int(RESTART_BUSY * 1000) if mode == "RESTART" else 0
            connection.execute(f"PRAGMA busy_timeout = {waits}")  # a thread's sleep: the event loop goes on
            row = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:
            log.debug("a %s checkpoint of %s did not run: %s", mode.lower(), self.path, exc)
            return None
        busy, frames, copied = (int(value) for value in row)
        if mode == "PASSIVE":
            self.checkpoints += 1
        elif not busy:
            self.restarts += 1
        return busy, frames, copied

    def apply(self, writer: sqlite3.Cursor, namespace: str, key: str, value: str | None, ttl: float | None) -> None:
        """Write (or with ``value`` None, delete) one row in the held transaction, after a sweep if one is due.

        The sweep comes first: the write is the holder's last statement, so one
        that fails leaves nothing of the holder's in a group's transaction.
        """
        if self._depth > 1:  # nested in a holder's transaction (a call less for the usual one)
            self.mark(writer)
        now = time.time()
        if now >= self.purge_at:
            self._purge(writer, now)
        if value is None:
            writer.execute(_DELETE, (namespace, key))
        else:
            if ttl is None:
                done = writer.execute(_WRITE_VALUE_LASTING, (value, namespace, key)).rowcount
                expires = None
            else:
                expires = now + ttl
                done = writer.execute(_WRITE_VALUE, (value, namespace, key, expires - EXPIRES_STEP, expires)).rowcount
            if not done and not writer.execute(_WRITE_ROW, (value, expires, namespace, key)).rowcount:
                writer.execute(_INSERT, (namespace, key, value, expires))
        if self._stale < KNOWN_STALE:  # written (a statement that fails changes nothing): kept once committed
            self._staged[(namespace, key)] = value

    def transact(self, operation: Callable[[sqlite3.Cursor], _T]) -> _T:
        """``operation(cursor)`` in a transaction of its own (or in the one this greenlet holds); durable on return."""
        writer = self.hold(self.lock_timeout)
        try:
            result = operation(writer)
        except BaseException:
            self.release(commit=False)
            raise
        group = self.release()
        if group is not None:
            group.wait()
        return result

    def change(self, namespace: str, key: str, value: str | None, ttl: float | None = None) -> None:
        """Write (or delete) one row in a transaction of its own (or in the one this greenlet holds)."""
        self.transact(lambda writer: self.apply(writer, namespace, key, value, ttl))

    def remove_namespace(self, namespace: str) -> None:
        def remove(writer: sqlite3.Cursor) -> None:
            self.mark(writer)
            writer.execute(_DELETE_NAMESPACE, (namespace,))
            self._forget_all = True

        self.transact(remove)

    # -- expiry ----------------------------------------------------------
    def _purge(self, writer: sqlite3.Cursor, now: float, limit: int = PURGE_LIMIT) -> int:
        self.mark(writer)
        deleted = writer.execute(_PURGE, (now - PURGE_GRACE, limit)).rowcount
        if deleted:
            self._forget_all = True
        # a full batch: more are due, sweep again at the next write a second from now
        self.purge_at = now + (1.0 if deleted >= limit else PURGE_INTERVAL)
        if deleted:
            log.info("swept %d expired session records", deleted)
        return int(deleted)

    def purge(self, *, now: float | None = None, limit: int = PURGE_LIMIT) -> int:
        """Delete up to ``limit`` rows ``PURGE_GRACE`` seconds past their ``expires`` (one DELETE); how many."""
        return self.transact(lambda writer: self._purge(writer, time.time() if now is None else now, limit))


_shared: dict[str, Database] = {}


def shared_database(path: str, lock_timeout: float = 10.0) -> Database:
    """The one :class:`Database` of ``path`` that this process's Beaker namespace managers use."""
    database = _shared.get(path)
    if database is None:
        database = _shared[path] = Database(path, lock_timeout=lock_timeout)
    return database


class SqliteNamespaceManager(NamespaceManager):  # type: ignore[misc]
    """Stores ``str`` values in rows of a SQLite database; never unpickles.

    Under plain Beaker (``type = wsgisession.sqlite``): ``url`` or ``data_dir`` names the database.
    """

    def __init__(
        self, namespace: str, url: str | None = None, data_dir: str | None = None,
        database: Database | None = None, **_: Any,
    ) -> None:
        super().__init__(namespace)
        self.database = database or shared_database(database_path(data_dir=data_dir, url=url))

    def __getitem__(self, key: str) -> str:
        value = self.database.read(self.namespace, key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.database.read(self.namespace, str(key)) is not None

    def has_key(self, key: str) -> bool:
        return key in self

    def set_value(self, key: str, value: str, expiretime: int | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError("the wsgisession SQLite backend stores str values only")
        self.database.change(self.namespace, key, value, expiretime)

    def __setitem__(self, key: str, value: str) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.database.change(self.namespace, key, None)

    def do_remove(self) -> None:
        self.database.remove_namespace(self.namespace)

    def keys(self) -> list[str]:
        return self.database.keys(self.namespace)


class SqliteBackend(Backend):
    """The SQLite store: reads on one connection, writes and transactions on another, under the database's lock."""

    name = "sqlite"
    store_wide = True
    expires = True
    faults = (sqlite3.Error, OSError)

    def __init__(self, *, data_dir: str | None = None, url: str | None = None, lock_timeout: float = 10.0,
                 **options: Any) -> None:
        path = database_path(data_dir=data_dir, url=url)
        self.database = Database(path, lock_timeout=lock_timeout, key="url" if url else "data_dir")
        super().__init__(SqliteNamespaceManager, database=self.database, **options)
        # Speed: the store calls the database's own methods (a call less in every transaction)
        self.reserve = self.database.reserve  # type: ignore[method-assign]
        self.unreserve = self.database.unreserve  # type: ignore[method-assign]

    def fault(self, exc: BaseException) -> StoreUnavailable:
        log.error("the sqlite session store %s failed: %s", self.database.path, exc)
        return StoreUnavailable(f"the sqlite session store failed: {exc}", backend=self.name)

    # Speed: straight to the database, without a namespace manager; ids are checked first all the same
    def read(self, key: str) -> str | None:
        if not is_session_id(key):
            raise ValueError("not a session id")
        try:
            return self.database.read(key, KEY)
        except self.faults as exc:
            raise self.fault(exc) from exc

    def write(self, key: str, text: str, ttl: int | None = None) -> None:
        if not is_session_id(key):
            raise ValueError("not a session id")
        try:
            self.database.change(key, KEY, text, ttl)
        except self.faults as exc:
            raise self.fault(exc) from exc

    def remove(self, key: str) -> None:
        if not is_session_id(key):
            raise ValueError("not a session id")
        try:
            self.database.change(key, KEY, None)
        except self.faults as exc:
            raise self.fault(exc) from exc

    def begin(self, key: str, timeout: float) -> Transaction:
        if not is_session_id(key):
            raise ValueError("not a session id")
        database = self.database
        try:
            writer = database.hold(timeout)
        except self.faults as exc:
            raise self.fault(exc) from exc
        try:
            text = database.read_held(writer, key, KEY)
        except BaseException as exc:
            database.release(commit=False)
            if isinstance(exc, self.faults):
                raise self.fault(exc) from exc
            raise
        txn = _Immediate(self, key, text)
        txn.cursor, txn.group = writer, None
        return txn

    def purge(self, *, now: float | None = None, limit: int = PURGE_LIMIT) -> int:
        """Sweep expired rows now (writes do it by themselves every ``PURGE_INTERVAL``); how many went."""
        try:
            return self.database.purge(now=now, limit=limit)
        except self.faults as exc:
            raise self.fault(exc) from exc


class _Immediate(Transaction):
    """A SQLite transaction (``BEGIN IMMEDIATE`` taken, or a group's gone on in): the commit writes the row,
    then ``COMMIT`` (or leaves it to the group, which :meth:`settle` waits for)."""

    __slots__ = ("cursor", "group")

    backend: SqliteBackend
    cursor: sqlite3.Cursor  # the write connection's, as begin() took it
    group: Group | None

    def commit(self) -> None:
        change, self.change = self.change, None
        backend = self.backend
        database = backend.database
        try:
            if change is not None:
                database.apply(self.cursor, self.key, KEY, None if change[1] == -1 else change[0], change[1])
        except BaseException as exc:
            try:
                database.release(commit=False)  # the stored session stays as it was
            except backend.faults:
                log.warning("could not roll back a failed session save")
            if isinstance(exc, backend.faults):
                raise backend.fault(exc) from exc
            raise
        try:
            self.group = database.release()
        except backend.faults as exc:
            raise backend.fault(exc) from exc

    def settle(self) -> None:
        group, self.group = self.group, None
        if group is not None:
            try:
                group.wait()
            except self.backend.faults as exc:
                raise self.backend.fault(exc) from exc
