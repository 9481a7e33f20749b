"""The shared session: Beaker's session API with merged saves and ``atomic()``.

A :class:`SharedSession` is what ``environ['beaker.session']`` holds and what
Socket.IO handlers receive. It is a mapping with Beaker's methods (``save``,
``delete``, ``invalidate``, ``regenerate_id``, ``id``, ``is_new`` ...), and:

- it remembers the state it loaded, so :meth:`save` writes only the keys this
  request or event changed (nested in-place edits included) over the latest
  stored state, under the session's lock; a read-only user writes nothing;
- :meth:`atomic` holds the lock from a fresh load to the save, so
  read-modify-write sequences from any mix of requests and events never lose
  an update::

      with session.atomic():
          session["n"] = session.get("n", 0) + 1

- a save after the session was deleted, rotated or expired raises
  :class:`~wsgisession.errors.SessionEnded` instead of bringing it back.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, NoReturn, Self

import orjson

from .errors import SessionEnded, SessionExpired, SessionValueError, UnknownSession
from .ids import new_session_id
from .jsondata import same_json as _same_json, snapshot as _snapshot
from .records import Record, merge as _merge
from .users import LABEL_KEY, user_of

if TYPE_CHECKING:
    from .backends.base import Transaction
    from .manager import SessionManager

log = logging.getLogger(__name__)

_MISSING = object()
_EMPTY_SNAPSHOT = b"{}"


class SharedSession(MutableMapping[str, Any]):
    """One session, shared by HTTP requests and Socket.IO events."""

    __slots__ = (
        "_manager", "_strict", "id", "is_new", "ended", "rotated_from", "accessed_now", "touch_due",
        "_txn", "created", "last_accessed", "_data", "_snap", "_base", "_pending_load", "_clean", "_record",
    )

    def __init__(
        self, manager: SessionManager, session_id: str | None, *, is_new: bool, strict: bool = False
    ) -> None:
        self._manager = manager
        self._strict = strict  # sockets: an ended session raises instead of starting over
        self.id: str = session_id or new_session_id()
        self.is_new = is_new
        self.ended: str | None = None  # the reason, once deleted or rotated away
        self.rotated_from: str | None = None
        self.accessed_now = False
        self.touch_due = False
        self._txn: Transaction | None = None  # inside atomic(): the held transaction; the snapshot is the stored state
        self.created = manager.clock() if is_new else 0.0  # a stored session's comes with it
        self.last_accessed: float | None = None
        self._data: dict[str, Any] = {}
        self._snap: bytes | None = _EMPTY_SNAPSHOT  # the stored state as loaded or saved, serialized
        self._base: dict[str, Any] | None = {}  # the same, decoded (lazily, from _snap)
        self._pending_load: bool = not is_new
        self._clean = False  # the data is scalars only and as stored: only __setitem__ or __delitem__ change it
        self._record: Record | None = None  # the record last loaded or saved (this session's own object)

    @classmethod
    def new(cls, manager: SessionManager) -> Self:
        """A new, empty session; stored on its first save."""
        return cls(manager, None, is_new=True)

    @classmethod
    def open(cls, manager: SessionManager, session_id: str, *, strict: bool = False) -> Self:
        """The session of an existing id, loaded now (raises UnknownSession, SessionExpired)."""
        session = cls(manager, session_id, is_new=False, strict=strict)
        session.load()
        return session

    @classmethod
    def create(cls, manager: SessionManager, *, strict: bool = False) -> Self:
        """A new session whose empty record is stored at once (its id is live now)."""
        session_id, record, text = manager.create()
        session = cls(manager, session_id, is_new=False, strict=strict)
        session._saved(record, text, record.snapshot, True)
        return session

    # -- loading ---------------------------------------------------------
    def load(self, txn: Transaction | None = None) -> None:
        """Load the stored state now (raises UnknownSession, SessionExpired, StoreUnavailable).

        From the text ``txn`` read under the lock, if the caller holds the session.
        """
        record, text = self._manager.load(self.id, txn)
        self._saved(record, text, record.snapshot if record.snapshot is not None else _snapshot(record.data), True)

    def _saved(self, record: Record, text: str, snapshot: bytes | None, loaded: bool = False) -> None:
        """Take ``record`` (just stored, or ``loaded``, as ``text``; ``snapshot`` of its data) as the stored state."""
        self._record = record
        self._data = record.data
        self._snap = snapshot
        self._clean = record.flat  # then snapshot is record.snapshot: the same data
        self._base = None if snapshot is not None else self._manager.records.decode(text).data
        self.created = record.created
        self.last_accessed = record.accessed
        self._pending_load = False
        if loaded:
            manager = self._manager
            self.touch_due = bool(manager.timeout) and manager.clock() - record.accessed >= manager.touch_interval
        else:
            self.touch_due = False

    def _ensure(self, txn: Transaction | None = None) -> dict[str, Any]:
        self.accessed_now = True
        if self._pending_load:
            try:
                self.load(txn)
            except SessionExpired:
                if self._strict:
                    raise
                self._reset_new()  # start over with a fresh id and no record
            except UnknownSession as exc:
                if self._strict:
                    raise SessionEnded("the session no longer exists", reason="logout") from exc
                self._reset_new()
        return self._data

    def _reset_new(self) -> None:
        self.id = new_session_id()
        self.is_new = True
        self._data, self._base, self._snap = {}, {}, _EMPTY_SNAPSHOT
        self._clean = False
        self._record = None
        self.created = self._manager.clock()
        self.last_accessed = None
        self._pending_load = False
        self.touch_due = False

    # -- mapping ---------------------------------------------------------
    # the hot three skip calling _ensure() once loaded
    def __getitem__(self, key: str) -> Any:
        data = self._ensure() if self._pending_load else self._data
        self.accessed_now = True
        return data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        data = self._ensure() if self._pending_load else self._data
        self.accessed_now = True
        self._clean = False
        data[key] = value

    def __delitem__(self, key: str) -> None:
        data = self._ensure()
        self._clean = False
        del data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ensure())

    def __len__(self) -> int:
        return len(self._ensure())

    def __contains__(self, key: object) -> bool:
        return key in self._ensure()

    def get(self, key: str, default: Any = None) -> Any:
        data = self._ensure() if self._pending_load else self._data
        self.accessed_now = True
        return data.get(key, default)

    def __repr__(self) -> str:
        state = "unloaded" if self._pending_load else repr(self._data)
        return f"<SharedSession {self._manager.fingerprint(self.id)} {state}>"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe deep copy of the data."""
        return dict(json.loads(json.dumps(self._ensure())))

    # -- change tracking -------------------------------------------------
    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """The keys set (with values) and deleted since the last load or save."""
        if self._pending_load or not self._modified():
            return {}, []
        return self._diff()

    def _diff(self) -> tuple[dict[str, Any], list[str]]:
        """The keys set and deleted against the stored state (a key by key compare)."""
        base = self._stored()
        sets = {k: v for k, v in self._data.items() if not _same_json(base.get(k, _MISSING), v)}
        dels = [k for k in base if k not in self._data]
        return sets, dels

    def _modified(self) -> bool:
        """Whether the data differs from the stored state (one snapshot compare when possible)."""
        if self._clean:  # scalars only, and no key set or deleted since the load or save
            return False
        return self._snap is None or _snapshot(self._data) != self._snap

    def _stored(self) -> dict[str, Any]:
        """The stored state, as loaded or last saved (decoded on first use)."""
        if self._base is None:
            self._base = orjson.loads(self._snap) if self._snap is not None else {}
        return self._base

    @property
    def dirty(self) -> bool:
        sets, dels = self.changes()
        return bool(sets or dels)

    # -- saving ----------------------------------------------------------
    def save(self, accessed_only: bool = False) -> bool:
        """Merge this session's changes into the stored state.

        Returns whether anything was written. A session that nobody changed
        writes nothing (only a due touch of its access time, if any).
        """
        if self.ended:
            raise SessionEnded(f"the session was ended ({self.ended}); nothing was saved", reason=self.ended)
        if self._clean and not self.touch_due:  # nothing can have changed: the usual socket event
            return False
        manager = self._manager
        if self._txn is not None:  # inside atomic(): we hold the lock and _data is the whole new state
            current = _snapshot(self._data)
            changed = current is None or current != self._snap
            if not ((changed and not accessed_only) or self.touch_due):
                return False
            record = self._record
            if record is not None and record.data is self._data:  # the loaded record, updated in place
                record.accessed = manager.clock()
            else:
                record = Record(self.created, manager.clock(), self._data)
            txn = self._txn if self._txn.key == self.id else None  # rotated inside the block: the new id
            self._saved(record, manager.write(self.id, record, current, txn), current)
            self.is_new = False
            return True
        sets: dict[str, Any]
        dels: list[str]
        if accessed_only or self._pending_load or not self._modified():
            sets, dels = {}, []  # nothing changed (the usual case: one snapshot compare)
        else:
            sets, dels = self._diff()
        if not (sets or dels or self.touch_due):
            return False
        store = manager.store
        txn = store.begin(self.id)  # without a context manager object: every merged save takes it
        try:
            now = manager.clock()
            record = manager.live(self.id, txn.text)
            if record is None:
                if not self.is_new:
                    self._gone(txn, "the session ended meanwhile; nothing was saved")
                record = Record(self.created, now, {})
            else:
                record.accessed = now
            _merge(record.data, sets, dels)
            snapshot = _snapshot(record.data)
            text = manager.write(self.id, record, snapshot, txn)
        finally:
            store.finish(txn)
        self._saved(record, text, snapshot)
        self.is_new = False
        return True

    def _gone(self, txn: Transaction, message: str) -> NoReturn:
        """The record vanished (logout elsewhere) or expired: raise SessionEnded with which."""
        self.ended = "expired" if txn.text is not None else "logout"
        raise SessionEnded(message, reason=self.ended)

    def touch(self) -> bool:
        """Record an access if one is due (slides the idle timeout); returns whether it wrote."""
        self._ensure()
        return self.save(accessed_only=True) if self.touch_due else False

    def persist(self) -> None:
        """Beaker's name for a save."""
        self.save()

    def revert(self) -> None:
        """Drop unsaved changes."""
        self._clean = False
        if not self._pending_load:
            if self._snap is not None:
                self._data = orjson.loads(self._snap)
            else:  # a deep copy of what orjson cannot snapshot
                self._data = json.loads(json.dumps(self._stored()))

    def accessed(self) -> bool:
        """Whether this request or event used the session."""
        return self.accessed_now

    def atomic(self) -> Atomic:
        """Hold the lock from a fresh load to the save (read-modify-write)."""
        return Atomic(self)

    # -- users -----------------------------------------------------------
    def bind_user(self, user_id: str | int, *, label: Any = None) -> None:
        """Tie this session to a user (at login): it is listed by ``sessions_of_user`` and ended by
        ``end_user_sessions``; ``label`` (JSON) is what the list shows for it, a device's name say.

        Sets the data key ``user_key`` (configurable: Flask-Login's ``_user_id`` under Flask);
        saved as any change is. Rotate the id at login too (:meth:`regenerate_id`).
        """
        if not isinstance(user_id, (str, int)) or isinstance(user_id, bool) or user_id == "":
            raise SessionValueError(f"a user id is a non-empty string or an integer, not {user_id!r}",
                                    key=self._manager.users.user_key)
        self[self._manager.users.user_key] = user_id
        if label is not None:
            self[LABEL_KEY] = label

    @property
    def user_id(self) -> str | None:
        """The user this session is bound to (as a string), or ``None``."""
        return user_of(self._ensure(), self._manager.users.user_key)

    # -- ending ----------------------------------------------------------
    def delete(self) -> None:
        """Remove the session from the store; its sockets end (reason ``logout``)."""
        self.accessed_now = True
        if self.ended:
            return
        if not self.is_new:
            self._manager.delete(self.id, reason="logout", carrier=self._txn)  # told once committed
        self.ended = "logout"
        self._data, self._base, self._snap = {}, {}, _EMPTY_SNAPSHOT
        self._clean = False
        self._record = None
        self._pending_load = False

    def invalidate(self) -> None:
        """Delete the session and carry on with a new, empty one (Beaker's API)."""
        self.delete()
        self._reset_new()
        self.ended = None

    def regenerate_id(self) -> None:
        """Move the session to a new id (login); the old id loads nothing."""
        self._ensure()
        if self.ended:
            raise SessionEnded(f"the session was ended ({self.ended})", reason=self.ended)
        old_id, new_id = self.id, new_session_id()
        manager = self._manager
        if self.is_new:
            self.id = new_id
            return
        sets, dels = self.changes()
        record, text, snapshot = manager.rotate(
            old_id, new_id, created=self.created, sets=sets, dels=dels, carrier=self._txn
        )
        self.id = new_id
        self.rotated_from = old_id
        self._saved(record, text, snapshot, True)


class Atomic:
    """The context manager :meth:`SharedSession.atomic` returns.

    Entering takes the session's lock, loads the stored state fresh and
    re-applies this session's unsaved changes on top; leaving saves (the
    outermost block only) and releases. An exception in the block undoes the
    block's changes and saves nothing.
    """

    __slots__ = ("session", "txn", "outer", "sets", "dels", "rollback")

    sets: dict[str, Any]
    dels: list[str]

    def __init__(self, session: SharedSession) -> None:
        self.session = session

    def __enter__(self) -> SharedSession:
        session = self.session
        if session.ended:
            raise SessionEnded(f"the session was ended ({session.ended})", reason=session.ended)
        manager = session._manager
        session.accessed_now = True
        self.outer = outer = session._txn
        store = manager.store
        self.txn = txn = store.begin(session.id)
        try:
            if session._pending_load:
                self.sets, self.dels = {}, []
                session._ensure(txn)  # the first load is fresh already: we hold the lock
            else:
                self.sets, self.dels = sets, dels = session.changes()
                if outer is None:
                    record = manager.live(session.id, txn.text)
                    if record is not None:
                        known = record.snapshot
                        session._saved(record, str(txn.text), known if known is not None else _snapshot(record.data), True)
                    elif not session.is_new:
                        session._gone(txn, "the session ended meanwhile")
                    if sets or dels:
                        session._clean = False
                        _merge(session._data, sets, dels)
            self.rollback = json.dumps(session._data) if outer is not None else None
        except BaseException:
            store.finish(txn)
            raise
        session._txn = txn  # the snapshot is the stored state while we hold the lock
        return session

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        session = self.session
        try:
            if exc_type is not None:
                session._clean = False
                if self.rollback is not None:
                    session._data = json.loads(self.rollback)
                else:
                    session.revert()
                    _merge(session._data, self.sets, self.dels)
            elif self.outer is None and not session.ended:  # a logout inside the block saves nothing
                session.save()
        finally:
            session._txn = self.outer
            session._manager.store.finish(self.txn)
