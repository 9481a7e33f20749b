"""The session manager: ids and their records, expiry, rotation and endings.

:class:`SessionManager` reads and writes session records
(:mod:`wsgisession.records`) in the :class:`~wsgisession.store.Store`,
enforces the idle and absolute timeouts, moves a session to a new id, and
tells its listeners (the Socket.IO side) when a session ended or changed id,
only once the change is committed to the store. It knows nothing of HTTP,
cookies or Socket.IO; :class:`~wsgisession.session.SharedSession` is built
on it.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Protocol

from .backends.base import Transaction
from .errors import SessionExpired, UnknownSession
from .ids import new_session_id
from .jsondata import snapshot as _snapshot
from .records import Record, Records, merge
from .store import Store
from .users import DEFAULT_USER_KEY, UserIndex, bound_user, user_of

log = logging.getLogger(__name__)


class Listener(Protocol):
    """What the manager tells about sessions' lives (after the store has committed the change)."""

    def session_ended(self, session_id: str, reason: str) -> None: ...

    def session_rotated(self, old_id: str, new_id: str) -> None: ...


#: seconds a store that expires records (Redis) keeps one past its expiry: longer than the default sweep interval
EXPIRED_KEPT = 60


class SessionManager:
    """Loads, saves, moves and ends session records for both HTTP and sockets."""

    def __init__(
        self,
        *,
        store: Store,
        fingerprint: Callable[[str], str],
        timeout: int | None = None,
        absolute_timeout: int | None = None,
        touch_interval: int = 60,
        autosave: bool = True,
        clock: Callable[[], float] = time.time,
        user_key: str = DEFAULT_USER_KEY,
    ) -> None:
        self.store = store
        self.fingerprint = fingerprint  # a keyed hash of ids: what logs and room names show
        self.timeout = timeout
        self.absolute_timeout = absolute_timeout
        self.touch_interval = touch_interval
        self.autosave = autosave
        self.clock = clock
        self.listeners: list[Listener] = []
        self.records = Records(fingerprint=fingerprint)
        #: the per-user index of sessions (the data key ``user_key`` ties a session to a user)
        self.users = UserIndex(store=store, user_key=user_key, ttl=self._index_ttl)

    def _index_ttl(self) -> int | None:
        # an index written now outlives every session it lists only when sessions have an absolute end
        return self.absolute_timeout + 1 if self.absolute_timeout and self.store.expires else None

    # -- records ---------------------------------------------------------
    def ttl(self, record: Record) -> int | None:
        """How long the store may keep a record: until it expires, and :data:`EXPIRED_KEPT` seconds more.

        An expired record is never served (:meth:`live`); kept a while, the
        sweep still finds it and tells its sockets ``expired`` (a record the
        store already dropped reads as a logout).
        """
        limits = []
        now = self.clock()
        if self.timeout:
            limits.append(record.accessed + self.timeout - now)
        if self.absolute_timeout:
            limits.append(record.created + self.absolute_timeout - now)
        return max(0, int(min(limits)) + 1) + EXPIRED_KEPT if limits else None

    def _store_ttl(self, record: Record) -> int | None:
        """The ``ttl`` to write a record with: :meth:`ttl` where the store expires records."""
        return self.ttl(record) if self.store.expires else None

    def expired(self, record: Record) -> bool:
        now = self.clock()
        if self.timeout and now - record.accessed > self.timeout:
            return True
        return bool(self.absolute_timeout and now - record.created > self.absolute_timeout)

    def live(self, session_id: str, text: str | None) -> Record | None:
        """The record of a stored ``text`` if it is readable and not expired, else ``None``."""
        record = self.records.parse(session_id, text)
        if record is None or self.expired(record):
            return None
        return record

    def read(self, session_id: str) -> Record | None:
        """The live record of an id; ``None`` if missing or expired."""
        return self.live(session_id, self.store.read(session_id))

    def load(self, session_id: str, txn: Transaction | None = None) -> tuple[Record, str]:
        """Like :meth:`read` (with the record's text) but raising UnknownSession or SessionExpired.

        From the text ``txn`` read under the session's lock, if the caller holds
        it. An expired record is removed, and its sockets are told.
        """
        if txn is not None:
            text = txn.text
        else:
            try:
                text = self.store.read(session_id)
            except ValueError:  # not an id we issue: the store refuses it before it becomes a key or a path
                raise UnknownSession("not a session id") from None
        record = self.records.parse(session_id, text)
        if record is None:
            raise UnknownSession("no such session")
        if self.expired(record):
            self.end(session_id, reason="expired")
            raise SessionExpired()
        return record, str(text)

    def write(
        self, session_id: str, record: Record, snapshot: bytes | None = None, txn: Transaction | None = None
    ) -> str:
        """Store ``record`` (through ``txn`` if the caller holds the session) and return its text.

        Called positionally on the hot path (keywords cost more per call).

        ``snapshot`` is :func:`wsgisession.jsondata.snapshot` of its data if the
        caller has it. Sets ``record.snapshot`` and ``record.flat``; a value
        JSON cannot hold raises SessionValueError and writes nothing.
        """
        users = self.users
        user = user_of(record.data, users.user_key)  # the cost of the user index on a save: this lookup
        if txn is not None:
            before = txn.text
            if user is not None or users.may_be_bound(before):  # the stored user, read before the new text
                users.moved(session_id, bound_user(self.records.parse(session_id, before), users.user_key), user)
        elif user is not None:  # rare: a write after a rotation inside atomic(), without the new id's lock
            before = self.store.read(session_id)
            users.moved(session_id, bound_user(self.records.parse(session_id, before), users.user_key), user)
        text = self.records.encode(session_id, record, snapshot)
        ttl = self._store_ttl(record)
        if txn is not None:
            txn.write(text, ttl)
        else:
            self.store.write(session_id, text, ttl=ttl)
        return text

    def create(self) -> tuple[str, Record, str]:
        """A new session id whose empty record is stored now (so the id is live at once)."""
        session_id = new_session_id()
        now = self.clock()
        record = Record(now, now, {})
        return session_id, record, self.write(session_id, record)

    # -- lives -----------------------------------------------------------
    def rotate(
        self, old_id: str, new_id: str, *, created: float, sets: dict[str, Any], dels: list[str],
        carrier: Transaction | None = None,
    ) -> tuple[Record, str, bytes | None]:
        """Move a session to ``new_id`` with ``sets`` and ``dels`` merged; the old id loads nothing.

        Under the old id's transaction; a record that is gone starts empty
        (``created`` kept). Listeners hear of it once the move is committed, or,
        with ``carrier`` (the transaction of an ``atomic()`` block that holds the
        session), once that one is, in the order of the block's changes.
        Returns the record, its text and the snapshot of its data.
        """
        store = self.store
        txn = store.begin(old_id)
        try:
            record = self.live(old_id, txn.text) or Record(created, self.clock(), {})
            key = self.users.user_key
            old_user = bound_user(record, key)
            merge(record.data, sets, dels)
            snapshot = _snapshot(record.data)
            text = self.records.encode(new_id, record, snapshot)
            self.users.renamed(old_id, new_id, old_user, user_of(record.data, key))
            self.store.write(new_id, text, ttl=self._store_ttl(record))
            txn.remove()
            (carrier or txn).after_commit(lambda: self._rotated(old_id, new_id))
        finally:
            store.finish(txn)
        return record, text, snapshot

    def _rotated(self, old_id: str, new_id: str) -> None:
        self.records.forget(old_id)
        log.info("session %s rotated to %s", self.fingerprint(old_id), self.fingerprint(new_id))
        for listener in self.listeners:
            try:
                listener.session_rotated(old_id, new_id)
            except Exception:  # one listener's bug must not keep the others (or the caller) from the news
                log.exception("a listener failed on the rotation of session %s", self.fingerprint(old_id))

    def delete(self, session_id: str, *, reason: str, carrier: Transaction | None = None) -> None:
        """Remove a session under its lock; once that is committed, every listener is told (its sockets end).

        ``carrier``: as for :meth:`rotate`.
        """
        store = self.store
        txn = store.begin(session_id)
        try:
            users = self.users
            if users.may_be_bound(txn.text):
                users.removed(session_id, bound_user(self.records.parse(session_id, txn.text), users.user_key))
            txn.remove()
            (carrier or txn).after_commit(lambda: self._ended(session_id, reason))
        finally:
            store.finish(txn)

    # -- users ------------------------------------------------------------
    def sessions_of_user(self, user_id: Any) -> list[tuple[str, Record]]:
        """The live sessions bound to a user, oldest first; ids found dead on the way leave the index."""
        user = str(user_id)
        key = self.users.user_key
        found: list[tuple[str, Record]] = []
        dead: set[str] = set()
        for session_id in self.users.ids(user):
            record = self.read(session_id)
            if bound_user(record, key) == user:
                assert record is not None
                found.append((session_id, record))
            else:
                dead.add(session_id)
        self.users.prune(user, dead)
        found.sort(key=lambda item: item[1].created)
        return found

    def end_user_sessions(self, user_id: Any, *, keep: str | None = None, reason: str = "signed_out") -> int:
        """End every session of a user (but ``keep``); returns how many ended. Their sockets end everywhere."""
        ended = 0
        for session_id, _ in self.sessions_of_user(user_id):
            if session_id != keep:
                self.delete(session_id, reason=reason)
                ended += 1
        return ended

    def end(self, session_id: str, *, reason: str) -> None:
        """Remove a session (expired, or ended from outside a request) and tell every listener."""
        self.store.remove(session_id)
        self._ended(session_id, reason)

    def _ended(self, session_id: str, reason: str) -> None:
        self.records.forget(session_id)
        log.info("session %s ended (%s)", self.fingerprint(session_id), reason)
        for listener in self.listeners:
            try:
                listener.session_ended(session_id, reason)
            except Exception:  # as in _rotated
                log.exception("a listener failed on the end of session %s", self.fingerprint(session_id))
