"""The session store: JSON text by session id, in a Beaker backend, and the transaction that changes it.

This is the seam between wsgisession and Beaker. It knows session ids and
text, nothing of records, HTTP or Socket.IO. Backends
(:func:`wsgisession.backends.backend_for`):

``memory``
    this process's dictionary (one process only; tests, development).
``sqlite`` (default)
    one SQLite database file (``<data_dir>/wsgisession.sqlite3``, or ``url``), one host.
``file``
    one file per session under ``data_dir``.
``ext:redis`` (or ``redis``)
    Redis at ``url``, for several processes and hosts.

Reads, writes and removes go straight to the backend. A change that must not
lose a concurrent one goes through a *transaction*: the session's in-process
lock (:class:`~wsgisession.locks.LockRegistry`, reentrant per greenlet), then,
for its outermost holder, the backend's transaction (its cross-process lock,
and the latest text read under it). A backend whose lock covers the whole
store (SQLite's) lets one greenlet of the process at a time hold it, which
serializes its sessions by itself: no session lock is taken under it::

    with store.transaction(session_id) as txn:
        txn.write(change(txn.text))

:meth:`Store.begin` and :meth:`Store.finish` are the same without a context
manager (the session's hot paths use them). A transaction's writes are made
at its commit, on every backend: until then the store holds what it held. A backend fault is
:class:`~wsgisession.errors.StoreUnavailable`; a lock not taken in
``lock_timeout`` is :class:`~wsgisession.errors.LockTimeout`.
"""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Callable

from .backends import backend_for
from .backends.base import Transaction
from .errors import LockTimeout
from .locks import LockRegistry, timeout_message

if TYPE_CHECKING:
    from .redis_client import RedisSettings

log = logging.getLogger(__name__)


class Store:
    """Reads and writes session texts; :meth:`transaction` changes one under its locks."""

    def __init__(
        self,
        *,
        type: str = "sqlite",
        data_dir: str | None = None,
        url: str | None = None,
        lock_timeout: float = 10.0,
        lock_ttl: float = 5.0,
        locking: bool = True,
        redis: RedisSettings | None = None,
        **options: Any,
    ) -> None:
        if type in ("ext:redis", "redis"):
            options["lock_ttl"] = lock_ttl
            options["settings"] = redis
            if lock_timeout <= lock_ttl:
                log.warning(
                    "lock_timeout (%ss) is not longer than lock_ttl (%ss): a waiter may give up just before "
                    "the lock of a holder that died expires", lock_timeout, lock_ttl,
                )
        if type == "sqlite":
            options["lock_timeout"] = lock_timeout  # its plain writes wait for the database's write lock too
        self.backend = backend_for(type, data_dir=data_dir, url=url, **options)
        self.name = self.backend.name
        self.expires = self.backend.expires  # whether the backend drops records past a write's ttl
        self.locking = locking  # off only to measure what locks cost (benchmarks)
        # a backend whose lock covers every session (SQLite's) is every session's lock: no session lock under it
        self.store_wide = self.backend.store_wide
        self.lock_timeout = lock_timeout
        self.locks = LockRegistry(timeout=lock_timeout)  # the sessions' own locks (not where store_wide)
        self._held: dict[str, Transaction] = {}  # store_wide: the transactions of the greenlet that holds the store
        # Speed: reads, writes and removes are the backend's own methods (one call less on every load and save)
        self.read: Callable[[str], str | None] = self.backend.read
        """The stored text of a session, or ``None`` if there is none."""
        self.write: Callable[..., None] = self.backend.write
        """``write(session_id, text, ttl=None)``: store ``text``; ``ttl`` (seconds) lets the backend expire it."""
        self.remove: Callable[[str], None] = self.backend.remove
        """Forget a session (no error if it is already gone)."""

    # -- transactions ------------------------------------------------------
    def transaction(self, session_id: str, *, timeout: float | None = None) -> AbstractContextManager[Transaction]:
        """Hold the session's locks: the transaction, with the latest text; committed at the end."""
        return _Holding(self, session_id, timeout)

    def begin(self, session_id: str, timeout: float | None = None) -> Transaction:
        """Take the session's locks and read its latest text; :meth:`finish` what it returns.

        A greenlet that holds the session already gets its own transaction back.
        """
        if not self.locking:
            return self._unlocked(session_id)
        timeout = self.lock_timeout if timeout is None else timeout
        if self.store_wide:
            return self._begin_store_wide(session_id, timeout)
        entry = self.locks.acquire(session_id, timeout)
        if entry.depth > 1:  # reentrant: the outermost holding has the transaction
            txn: Transaction = entry.held
            return txn
        try:  # one wait in all: the backend's lock gets what the in-process one left
            txn = self.backend.begin(session_id, max(0.0, timeout - entry.waited))
        except LockTimeout as exc:  # report the whole wait, not what was left of it
            self.locks.release(entry)
            raise LockTimeout(timeout_message(timeout), timeout=timeout) from exc
        except BaseException:
            self.locks.release(entry)
            raise
        txn.entry = entry
        entry.held = txn
        return txn

    def _begin_store_wide(self, session_id: str, timeout: float) -> Transaction:
        """:meth:`begin` where the backend's lock covers the store (SQLite's): it is every session's lock.

        Its in-process part (:meth:`Backend.reserve`, reentrant per greenlet) lets
        one greenlet at a time hold any session of the store, so no session lock
        is taken under it: every transaction in ``_held`` is that greenlet's.
        Speed: a session lock taken and given back cost ~0.3 us per transaction.
        """
        backend = self.backend
        waited = backend.reserve(timeout)
        txn = self._held.get(session_id)
        if txn is not None:  # reentrant: the outermost holding has the transaction
            txn.depth += 1
            return txn
        try:
            txn = backend.begin(session_id, max(0.0, timeout - waited))
        except LockTimeout as exc:  # report the whole wait, not what was left of it
            backend.unreserve()
            raise LockTimeout(timeout_message(timeout), timeout=timeout) from exc
        except BaseException:
            backend.unreserve()
            raise
        txn.depth = 1
        self._held[session_id] = txn
        return txn

    def holding(self) -> int:
        """How many sessions greenlets of this process hold in a transaction (or wait for, by their own lock)."""
        return len(self.locks) + len(self._held)

    def _unlocked(self, session_id: str) -> Transaction:
        """A transaction that takes no lock at all (``locking=False``: what locks cost, measured)."""
        return Transaction(self.backend, session_id, self.backend.read(session_id))

    def finish(self, txn: Transaction) -> None:
        """End one holding taken by :meth:`begin`; the outermost commits the writes and frees the locks.

        A write that fails at the commit raises StoreUnavailable (the lock is freed all the same).
        """
        entry = txn.entry
        if entry is not None:
            if entry.depth > 1:
                self.locks.release(entry)
                return
        elif txn.depth > 1:  # store-wide, reentrant
            txn.depth -= 1
            self.backend.unreserve()
            return
        try:
            txn.commit()
        finally:
            if entry is not None:
                entry.held = txn.entry = None
                self.locks.release(entry)
            elif txn.depth:  # store-wide
                txn.depth = 0
                del self._held[txn.key]
                self.backend.unreserve()
        txn.settle()  # durable now (SQLite may have left the COMMIT to a group, which others join meanwhile)
        after = txn.after
        if after is not None:  # committed: now others may hear of it
            txn.after = None
            for callback in after:
                callback()


class _Holding(AbstractContextManager[Transaction]):
    """:meth:`Store.transaction`: :meth:`Store.begin` and :meth:`Store.finish` as a context manager."""

    __slots__ = ("_store", "_session_id", "_timeout", "_txn")

    def __init__(self, store: Store, session_id: str, timeout: float | None) -> None:
        self._store = store
        self._session_id = session_id
        self._timeout = timeout

    def __enter__(self) -> Transaction:
        self._txn = self._store.begin(self._session_id, self._timeout)
        return self._txn

    def __exit__(self, *exc_info: object) -> None:
        self._store.finish(self._txn)
