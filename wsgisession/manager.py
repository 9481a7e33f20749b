"""The session manager: one place that knows ids, records, expiry and events.

A record is the JSON text ``{"created": t, "accessed": t, "data": {...}}``.
:class:`SessionManager` turns ids into :class:`~wsgisession.session.SharedSession`
objects and back, enforces the idle and absolute timeouts, and tells its
listeners (the Socket.IO side) when a session ends or changes id. It knows
nothing of HTTP or Socket.IO.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from . import codec
from .atomic import merge
from .cookies import SessionCookie, new_session_id
from .errors import SessionExpired, SessionValueError, UnknownSession
from .record_cache import RecordCache
from .store import Store

if TYPE_CHECKING:
    from .session import SharedSession

log = logging.getLogger(__name__)

security_log = logging.getLogger("wsgisession.security")


class Listener(Protocol):
    """What the manager tells about sessions' lives."""

    def session_ended(self, session_id: str, reason: str) -> None: ...

    def session_rotated(self, old_id: str, new_id: str) -> None: ...


class Record:
    """A decoded session record (built with positional arguments on the hot path: they cost less).

    ``snapshot`` and ``flat`` describe ``data`` as the manager last read or
    wrote it: :func:`~wsgisession.codec.snapshot` of it if that is exact
    (else ``None``), and whether it is scalars only
    (:func:`~wsgisession.codec.is_flat`). They are stale once ``data`` changes.
    """

    __slots__ = ("created", "accessed", "data", "snapshot", "flat")

    def __init__(
        self, created: float, accessed: float, data: dict[str, Any], snapshot: bytes | None = None, flat: bool = False
    ) -> None:
        self.created = created
        self.accessed = accessed
        self.data = data
        self.snapshot = snapshot
        self.flat = flat


class _Blank(Record):
    """A :class:`Record` made without running ``__init__`` (half the cost; the maker sets every slot)."""

    __slots__ = ()
    __init__ = object.__init__


class SessionManager:
    """Creates, loads, saves and ends sessions for both HTTP and sockets."""

    def __init__(
        self,
        *,
        store: Store,
        cookie: SessionCookie,
        timeout: int | None = None,
        absolute_timeout: int | None = None,
        touch_interval: int = 60,
        autosave: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cookie = cookie
        self.timeout = timeout
        self.absolute_timeout = absolute_timeout
        self.touch_interval = touch_interval
        self.autosave = autosave
        self.clock = clock
        self.listeners: list[Listener] = []
        self.records = RecordCache()

    # -- records ---------------------------------------------------------
    def _error(self, record: Record, exc: Exception) -> SessionValueError:
        """What cannot be stored as JSON, by key (for a SessionValueError)."""
        for key, value in record.data.items():
            try:
                codec.strict(value)
            except (TypeError, ValueError):
                return SessionValueError(f"session[{key!r}] cannot be stored as JSON ({exc}); nothing was saved", key=key)
            if not isinstance(key, str):
                return SessionValueError(f"session key {key!r} is not a string; nothing was saved", key=str(key))
        return SessionValueError(f"the session cannot be stored as JSON: {exc}", key="")

    def decode(self, text: str) -> Record:
        raw = codec.decode_record(text)
        data = raw["data"]
        if not isinstance(data, dict):
            raise ValueError("a session's data is a JSON object")
        return Record(float(raw["created"]), float(raw["accessed"]), data)

    def ttl(self, record: Record) -> int | None:
        """How long the store may keep a record: past it, it is expired anyway."""
        limits = []
        now = self.clock()
        if self.timeout:
            limits.append(record.accessed + self.timeout - now)
        if self.absolute_timeout:
            limits.append(record.created + self.absolute_timeout - now)
        return max(1, int(min(limits)) + 1) if limits else None

    def expired(self, record: Record) -> bool:
        now = self.clock()
        if self.timeout and now - record.accessed > self.timeout:
            return True
        return bool(self.absolute_timeout and now - record.created > self.absolute_timeout)

    def _parse(self, session_id: str, text: str | None) -> Record | None:
        """The record of ``text``; ``None`` if there is none or it is unreadable."""
        if text is None:
            return None
        cached = self.records.get(session_id, text)
        if cached is not None:  # the text this process last read or wrote for the id: decoded already
            found: Record = _Blank()
            found.created, found.accessed, found.data, found.snapshot, found.flat = cached
            return found
        try:
            record = self.decode(text)
        except (ValueError, KeyError, TypeError):
            security_log.warning("unreadable session record %s ignored", self.fingerprint(session_id))
            return None
        data = record.data
        snapshot = codec.snapshot(data)
        flat = snapshot is not None and codec.is_flat(data)
        if flat or codec.is_exact(data, snapshot):
            record.snapshot, record.flat = snapshot, flat
            self.records.put(session_id, text, record.created, record.accessed, data, snapshot, flat)
        return record

    def read(self, session_id: str) -> tuple[Record, str] | None:
        """The live record of an id and its text; ``None`` if missing or expired."""
        text = self.store.read(session_id)
        record = self._parse(session_id, text)
        if record is None or self.expired(record):
            return None
        return record, str(text)

    def load(self, session_id: str) -> tuple[Record, str]:
        """Like :meth:`read` but raising UnknownSession or SessionExpired."""
        try:
            text = self.store.read(session_id)
        except ValueError:  # not an id we issue: the store refuses it before it becomes a key or a path
            raise UnknownSession("not a session id") from None
        record = self._parse(session_id, text)
        if record is None:
            raise UnknownSession("no such session")
        if self.expired(record):
            self.end(session_id, reason="expired")
            raise SessionExpired()
        return record, str(text)

    def write(self, session_id: str, record: Record, *, snapshot: bytes | None = None) -> str:
        """Store ``record`` and return its text; a value JSON cannot hold raises SessionValueError.

        ``snapshot`` is :func:`wsgisession.codec.snapshot` of its data if the
        caller has it. Sets ``record.snapshot`` and ``record.flat``.
        """
        data = record.data
        if snapshot is None:
            snapshot = codec.snapshot(data)
        flat = snapshot is not None and codec.is_flat(data)
        if flat or codec.is_exact(data, snapshot):
            assert snapshot is not None
            text = codec.encode_exact(record.created, record.accessed, snapshot)
            record.snapshot, record.flat = snapshot, flat
        else:
            try:
                text = codec.encode_record(record.created, record.accessed, data, snapshot_text=snapshot, exact=False)
            except (TypeError, ValueError) as exc:
                raise self._error(record, exc) from exc
            record.snapshot, record.flat = None, False
        store = self.store
        store.write(session_id, text, ttl=self.ttl(record) if store.expires else None)
        self.records.put(session_id, text, record.created, record.accessed, data, record.snapshot, flat)
        return text

    def move(
        self, old_id: str, new_id: str, *, created: float, sets: dict[str, Any], dels: list[str]
    ) -> tuple[Record, str, bytes | None]:
        """Store a session's record under ``new_id`` with ``sets`` and ``dels`` merged, and remove ``old_id``.

        Under the old id's lock; a record that is gone starts empty (``created``
        kept). Returns the record, its text and the snapshot of its data.
        """
        store = self.store
        with store.lock(old_id):
            found = self.read(old_id)
            record = found[0] if found else Record(created, self.clock(), {})
            merge(record.data, sets, dels)
            snapshot = codec.snapshot(record.data)
            text = self.write(new_id, record, snapshot=snapshot)
            store.remove(old_id)
            self.records.forget(old_id)
        return record, text, snapshot

    # -- lives -----------------------------------------------------------
    def fingerprint(self, session_id: str) -> str:
        return self.cookie.fingerprint(session_id)

    def end(self, session_id: str, *, reason: str) -> None:
        """Remove a session and tell every listener (its sockets end)."""
        self.store.remove(session_id)
        self.records.forget(session_id)
        log.info("session %s ended (%s)", self.fingerprint(session_id), reason)
        for listener in self.listeners:
            listener.session_ended(session_id, reason)

    def rotated(self, old_id: str, new_id: str) -> None:
        log.info("session %s rotated to %s", self.fingerprint(old_id), self.fingerprint(new_id))
        for listener in self.listeners:
            listener.session_rotated(old_id, new_id)

    def open(self, session_id: str) -> "SharedSession":
        """The session of an existing id, loaded now (for socket events)."""
        from .session import SharedSession

        session = SharedSession(self, session_id, is_new=False)
        session.load()
        return session

    def create(self, *, strict: bool = False) -> "SharedSession":
        """A new session whose (empty) record is stored now, so that its id is live at once."""
        from .session import SharedSession

        session_id = new_session_id()
        now = self.clock()
        self.write(session_id, Record(now, now, {}))
        session = SharedSession(self, session_id, is_new=False, strict=strict)
        session.load()
        return session

    def new(self) -> "SharedSession":
        """A new, empty session; stored on its first save."""
        from .session import SharedSession

        return SharedSession(self, None, is_new=True)

