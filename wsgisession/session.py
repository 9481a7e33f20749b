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

In a request or a socket event, :meth:`~SharedSession.save` is Beaker's: it asks
for a save when the response starts (or the handler returns), of whatever the
session holds then; a view or handler that raises first stores nothing.
:meth:`~SharedSession.commit` writes at once. Beaker's other names are here too
(``get_by_id``, ``has_key``, ``copy``, ``lock``/``unlock``, ``persist``,
``dirty()``, ``domain``/``path`` and the cookie's other attributes, the keys
``_creation_time`` and ``_accessed_time``); docs/beaker.rst says where and why
they differ.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, NoReturn, Self

import orjson

from .cookies import CookieAttributes, Expires, SameSite
from .errors import SessionEnded, SessionExpired, SessionValueError, UnknownSession
from .ids import new_session_id
from .jsondata import ENCODER, same_json as _same_json, snapshot as _snapshot
from .records import Record, merge as _merge, unjsonable
from .users import LABEL_KEY, user_of

if TYPE_CHECKING:
    from .backends.base import Transaction
    from .manager import SessionManager

log = logging.getLogger(__name__)

_MISSING = object()
_EMPTY_SNAPSHOT = b"{}"
_DEFAULT_COOKIE = CookieAttributes()
#: Beaker's documented keys, read from the record, never stored as data
SPECIAL_KEYS = frozenset({"_creation_time", "_accessed_time"})


class SharedSession(MutableMapping[str, Any]):
    """One session, shared by HTTP requests and Socket.IO events."""

    __slots__ = (
        "_manager", "_strict", "_id", "is_new", "ended", "rotated_from", "accessed_now", "touch_due",
        "_txn", "_created", "_last_accessed", "_loaded_at", "_data", "_snap", "_base", "_pending_load", "_clean",
        "_record", "defer_save", "save_requested", "cookie_attributes", "cookie_changed", "_locks",
        "replaced_gone",
    )

    def __init__(
        self, manager: SessionManager, session_id: str | None, *, is_new: bool, strict: bool = False
    ) -> None:
        self._manager = manager
        self._strict = strict  # sockets: an ended session raises instead of starting over
        self._id: str = session_id or new_session_id()
        self.is_new = is_new
        self.ended: str | None = None  # the reason, once deleted or rotated away
        self.rotated_from: str | None = None
        self.accessed_now = False
        self.touch_due = False
        self._txn: Transaction | None = None  # inside atomic(): the held transaction; the snapshot is the stored state
        self._created = manager.clock() if is_new else 0.0  # a stored session's comes with it
        self._last_accessed: float | None = None
        self._loaded_at = self._created  # Beaker's _accessed_time: when this request or event loaded it
        self._data: dict[str, Any] = {}
        self._snap: bytes | None = _EMPTY_SNAPSHOT  # the stored state as loaded or saved, serialized
        self._base: dict[str, Any] | None = {}  # the same, decoded (lazily, from _snap)
        self._pending_load: bool = not is_new
        self._clean = False  # the data is scalars only and as stored: only __setitem__ or __delitem__ change it
        self._record: Record | None = None  # the record last loaded or saved (this session's own object)
        #: in a request or event: save() asks for a save at its end (Beaker's); else save() writes at once
        self.defer_save = False
        #: save() was called (deferred): the end of the request or event saves, autosave or not
        self.save_requested = False
        #: this session's cookie (the middleware's, unless ``session.domain = ...`` and the like changed it)
        self.cookie_attributes = _DEFAULT_COOKIE
        #: a cookie attribute changed: the cookie is sent again
        self.cookie_changed = False
        self._locks: list[Atomic] | None = None  # lock() blocks, innermost last
        #: the id it was made with named a session already gone (unknown, expired) when first used: this is
        #: a fresh one in its place (the middleware then leaves the client's cookie alone until a save)
        self.replaced_gone = False

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
        record, text = self._manager.load(self._id, txn)
        self._saved(record, text, record.snapshot if record.snapshot is not None else _snapshot(record.data), True)

    def _saved(self, record: Record, text: str, snapshot: bytes | None, loaded: bool = False) -> None:
        """Take ``record`` (just stored, or ``loaded``, as ``text``; ``snapshot`` of its data) as the stored state."""
        self._record = record
        self._data = record.data
        self._snap = snapshot
        self._clean = record.flat  # then snapshot is record.snapshot: the same data
        self._base = None if snapshot is not None else self._manager.records.decode(text).data
        self._created = record.created
        self._pending_load = False
        if loaded:  # last_accessed: the stored access time as this request or event found it
            manager = self._manager
            self._last_accessed = record.accessed
            self._loaded_at = now = manager.clock()
            self.touch_due = bool(manager.timeout) and now - record.accessed >= manager.touch_interval
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
                self.replaced_gone = True
            except UnknownSession as exc:
                if self._strict:
                    raise SessionEnded("the session no longer exists", reason="logout") from exc
                self._reset_new()
                self.replaced_gone = True
        return self._data

    def _reset_new(self) -> None:
        self._id = new_session_id()
        self.is_new = True
        self._data, self._base, self._snap = {}, {}, _EMPTY_SNAPSHOT
        self._clean = False
        self._record = None
        self._created = self._loaded_at = self._manager.clock()
        self._last_accessed = None
        self._pending_load = False
        self.touch_due = False

    # -- mapping ---------------------------------------------------------
    # the hot three skip calling _ensure() once loaded
    def __getitem__(self, key: str) -> Any:
        data = self._ensure() if self._pending_load else self._data
        self.accessed_now = True
        try:
            return data[key]
        except KeyError:
            if key in SPECIAL_KEYS:
                return self._special(key)
            raise

    def __setitem__(self, key: str, value: Any) -> None:
        if key in SPECIAL_KEYS:
            raise TypeError(f"session[{key!r}] is the session's own and read-only "
                            f"(session.{'created' if key == '_creation_time' else 'last_accessed'} is the same)")
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

    def __bool__(self) -> bool:
        """Always true, as Beaker's session is: ``if not session:`` asks whether there is one, not whether it is empty."""
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._ensure() or key in SPECIAL_KEYS

    def get(self, key: str, default: Any = None) -> Any:
        data = self._ensure() if self._pending_load else self._data
        self.accessed_now = True
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return self._special(key) if key in SPECIAL_KEYS else default
        return value

    def _special(self, key: str) -> float:
        """Beaker's ``_creation_time`` and ``_accessed_time`` (this request's or event's access)."""
        return self._created if key == "_creation_time" else self._loaded_at

    def has_key(self, key: str) -> bool:
        """Beaker's (and Python 2's) ``key in session``."""
        return key in self

    def copy(self) -> dict[str, Any]:
        """A shallow copy of the data, as a ``dict`` (Beaker's session is one)."""
        return dict(self._ensure())

    def __repr__(self) -> str:
        state = "unloaded" if self._pending_load else repr(self._data)
        return f"<{type(self).__name__} {self._manager.fingerprint(self._id)} {state}>"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe deep copy of the data."""
        return dict(json.loads(json.dumps(self._ensure())))

    # -- what Beaker reads as attributes -----------------------------------
    @property
    def id(self) -> str:
        """The session's id (reading it is a use of the session, as in Beaker: :meth:`accessed` is then true)."""
        self.accessed_now = True
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    @property
    def created(self) -> float:
        """When the session was created (loads a stored session first)."""
        if self._pending_load:
            self._ensure()
        return self._created

    @property
    def last_accessed(self) -> float | None:
        """The stored access time as this request or event found it; ``None`` for a new session.

        That is the time of the last save, or of the last touch (``touch_interval``):
        a read-only request writes nothing (rule 4), so it moves no access time.
        """
        if self._pending_load:
            self._ensure()
        return self._last_accessed

    def get_by_id(self, session_id: str) -> Self | None:
        """Beaker's: the stored session of ``session_id``, or ``None`` if there is none (or it expired).

        It is not this request's session: its :meth:`save` writes at once.
        """
        if not isinstance(session_id, str):
            raise TypeError(f"get_by_id() takes a session id (str), not {type(session_id).__name__}")
        try:
            return type(self).open(self._manager, session_id)
        except (UnknownSession, SessionExpired):
            return None

    # -- the cookie (Beaker's attributes; a change sends the cookie again) ------
    def _cookie(self, **change: object) -> None:
        self.cookie_attributes = self.cookie_attributes.replace(**change)
        self.cookie_changed = True
        self.accessed_now = True

    @property
    def domain(self) -> str | None:
        """The cookie's domain; setting it moves the cookie there (sent again with this response)."""
        return self.cookie_attributes.domain

    @domain.setter
    def domain(self, value: str | None) -> None:
        self._cookie(domain=value)

    @property
    def path(self) -> str:
        """The cookie's path; setting it moves the cookie there (sent again with this response)."""
        return self.cookie_attributes.path

    @path.setter
    def path(self, value: str) -> None:
        self._cookie(path=value)

    @property
    def cookie_expires(self) -> Expires:
        """Beaker's: ``True`` a browser-session cookie, ``False`` never, seconds, a ``timedelta`` or a ``datetime``."""
        return self.cookie_attributes.expires

    @cookie_expires.setter
    def cookie_expires(self, value: Expires) -> None:
        self._cookie(expires=value)

    @property
    def httponly(self) -> bool:
        return self.cookie_attributes.httponly

    @httponly.setter
    def httponly(self, value: bool) -> None:
        self._cookie(httponly=value)

    @property
    def secure(self) -> bool:
        return self.cookie_attributes.secure

    @secure.setter
    def secure(self, value: bool) -> None:
        self._cookie(secure=value)

    @property
    def samesite(self) -> SameSite | None:
        return self.cookie_attributes.samesite

    @samesite.setter
    def samesite(self, value: SameSite | None) -> None:
        self._cookie(samesite=value)

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

    def dirty(self) -> bool:
        """Whether the end of this request or event has something to write.

        Beaker's (``save()`` or ``delete()`` was called), or the data has unsaved changes.
        """
        if self.save_requested or self.ended is not None:
            return True
        sets, dels = self.changes()
        return bool(sets or dels)

    # -- saving ----------------------------------------------------------
    def save(self, accessed_only: bool = False) -> bool:
        """Save this session's changes: at the end of the request or event (Beaker's), else now.

        In a request or event (``defer_save``), it asks for a save when the
        response starts or the handler returns, of what the session holds then,
        and returns ``False`` (nothing written yet); a view or handler that raises
        first stores nothing. Inside :meth:`atomic` or :meth:`lock`, and for a
        session of :meth:`get_by_id` or built directly, it is :meth:`commit`.
        A session that ended raises :class:`SessionEnded` at once.
        """
        if self.ended:
            raise SessionEnded(f"the session was ended ({self.ended}); nothing was saved", reason=self.ended)
        if self.defer_save and self._txn is None and not accessed_only:
            self.accessed_now = True
            if not self._pending_load and _snapshot(self._data) is None:  # fails now, as a save would
                try:
                    ENCODER.encode(self._data)
                except (TypeError, ValueError) as exc:
                    raise unjsonable(self._data, exc) from exc
            self.save_requested = True
            return False
        return self._write(accessed_only, True)

    def commit(self, accessed_only: bool = False) -> bool:
        """Merge this session's changes into the stored state now.

        Returns whether anything was written. A session that nobody changed
        writes nothing (only a due touch of its access time, if any); a new,
        empty session is stored (it gets its cookie).
        """
        return self._write(accessed_only, True)  # an ended session raises SessionEnded there

    def finish(self, autosave: bool) -> bool:
        """The end of a request or event: write what :meth:`save` asked for, or (``autosave``) what changed.

        Else only a due touch of the access time. An ended session writes nothing.
        A :meth:`lock` left held is unlocked first (logged): the lock must not
        outlive the request or event. Returns whether anything was written.
        """
        while self._locks:
            log.warning("session %s: lock() without unlock() in this request or event; unlocked at its end",
                        self._manager.fingerprint(self._id))
            self.unlock()
        if self.ended:
            return False
        requested, self.save_requested = self.save_requested, False
        if requested:
            return self._write(False, True)
        return self._write(not autosave, False)

    def _write(self, accessed_only: bool, store_new: bool) -> bool:
        """The merged save; ``store_new``: a new session with no data is stored too (an explicit save)."""
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
                record = Record(self._created, manager.clock(), self._data)
            txn = self._txn if self._txn.key == self._id else None  # rotated inside the block: the new id
            self._saved(record, manager.write(self._id, record, current, txn), current)
            self.is_new = False
            return True
        sets: dict[str, Any]
        dels: list[str]
        if accessed_only or self._pending_load or not self._modified():
            sets, dels = {}, []  # nothing changed (the usual case: one snapshot compare)
        else:
            sets, dels = self._diff()
        if not (sets or dels or self.touch_due or (store_new and self.is_new and not accessed_only)):
            return False
        # an access time written under unsaved changes (persist() without save()) keeps them here, unsaved
        kept = self._diff() if accessed_only and not self._pending_load and self._modified() else None
        store = manager.store
        txn = store.begin(self._id)  # without a context manager object: every merged save takes it
        try:
            now = manager.clock()
            record = manager.live(self._id, txn.text)
            if record is None:
                if not self.is_new:
                    self._gone(txn, "the session ended meanwhile; nothing was saved")
                record = Record(self._created, now, {})
            else:
                record.accessed = now
            _merge(record.data, sets, dels)
            snapshot = _snapshot(record.data)
            text = manager.write(self._id, record, snapshot, txn)
        finally:
            store.finish(txn)
        self._saved(record, text, snapshot)
        self.is_new = False
        if kept is not None:
            self._clean = False
            _merge(self._data, *kept)
        return True

    def _gone(self, txn: Transaction, message: str) -> NoReturn:
        """The record vanished (logout elsewhere) or expired: raise SessionEnded with which."""
        self.ended = "expired" if txn.text is not None else "logout"
        raise SessionEnded(message, reason=self.ended)

    def touch(self) -> bool:
        """Record an access if one is due (slides the idle timeout); returns whether it wrote."""
        self._ensure()
        return self.commit(accessed_only=True) if self.touch_due else False

    def persist(self) -> None:
        """Beaker's: write now what the end of the request would.

        The changes if :meth:`save` was called (or autosave is on), else only
        the access time (if a touch is due: a read-only use writes nothing else).
        """
        if self.ended:
            raise SessionEnded(f"the session was ended ({self.ended}); nothing was saved", reason=self.ended)
        requested, self.save_requested = self.save_requested, False
        self._write(not (requested or self._manager.autosave), requested)

    def revert(self) -> None:
        """Drop unsaved changes."""
        self._clean = False
        if not self._pending_load:
            if self._snap is not None:
                self._data = orjson.loads(self._snap)
            else:  # a deep copy of what orjson cannot snapshot
                self._data = json.loads(json.dumps(self._stored()))

    def accessed(self) -> bool:
        """Whether this request or event used the session (its data, its id or its cookie)."""
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

    def lock(self) -> None:
        """Beaker's ``lock()``: enter :meth:`atomic` (the session's lock, a fresh load) until :meth:`unlock`.

        Pair it with ``unlock()`` in a ``finally:``; ``with session.atomic():`` does both.
        """
        block = Atomic(self)
        block.__enter__()
        if self._locks is None:
            self._locks = []
        self._locks.append(block)

    def unlock(self) -> None:
        """Beaker's ``unlock()``: leave the innermost :meth:`lock` (the outermost saves what changed, then frees)."""
        if not self._locks:
            raise RuntimeError("unlock() without a lock(): this session holds no lock")
        self._locks.pop().__exit__(None, None, None)

    # -- ending ----------------------------------------------------------
    def delete(self) -> None:
        """Remove the session from the store; its sockets end (reason ``logout``)."""
        self.accessed_now = True
        if self.ended:
            return
        if not self.is_new:
            self._manager.delete(self._id, reason="logout", carrier=self._txn)  # told once committed
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
        old_id, new_id = self._id, new_session_id()
        manager = self._manager
        if self.is_new:
            self._id = new_id
            return
        sets, dels = self.changes()
        record, text, snapshot = manager.rotate(
            old_id, new_id, created=self._created, sets=sets, dels=dels, carrier=self._txn
        )
        self._id = new_id
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
        self.txn = txn = store.begin(session._id)
        try:
            if session._pending_load:
                self.sets, self.dels = {}, []
                session._ensure(txn)  # the first load is fresh already: we hold the lock
            else:
                self.sets, self.dels = sets, dels = session.changes()
                if outer is None:
                    record = manager.live(session._id, txn.text)
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
