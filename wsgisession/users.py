"""Users and their devices: a per-user index of sessions, in the session store itself.

A session is tied to a user by one key of its data (``user_key``:
``session.bind_user(user_id)`` sets it; the Flask integration uses
Flask-Login's ``_user_id``, the Pyramid one the security helper's
``auth.userid``). The store keeps, for each user, one index record listing the
ids of the user's sessions, under an id derived from the user id
(:func:`index_id`), written through the same backend and locks as the sessions
themselves: so every backend has it, a Redis Cluster included (the index is one
key), and nothing else needs running.

The index follows the sessions from inside their own transactions, always
taking the session's lock first and then the index's (one order, no deadlock):

- a save whose data changes the user key moves the id from the old user's index
  to the new one's (login: one index write; an ordinary save: nothing);
- a rotation renames the id in the index, in the same holding of the old id;
- a removal (logout, ``end_user_sessions``) drops it.

A session that simply expires leaves its id in the index until the user's next
listing or index change, which drops every id whose session is gone, expired or
bound to another user: a listing only ever shows live sessions of that user.
An index record is not a session record: a cookie naming its id (it would have
to be signed with the secret) loads nothing.
"""
from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import orjson

from .store import Store

if TYPE_CHECKING:
    from .records import Record

log = logging.getLogger(__name__)

#: the session data key ``bind_user`` sets, unless configured otherwise
DEFAULT_USER_KEY = "_wsgisession_user"
#: the session data key of the device label ``bind_user(..., label=...)`` records
LABEL_KEY = "_wsgisession_device"


def index_id(user_id: str) -> str:
    """The store id of a user's index: 43 URL-safe characters, as a session id, derived from the user id."""
    digest = hashlib.sha256(b"wsgisession.user-index\x00" + user_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def user_of(data: dict[str, Any], key: str) -> str | None:
    """The user a session's data is bound to (``None`` if none); ids are compared as strings."""
    value = data.get(key)
    return None if value is None or value is False or value == "" else str(value)


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's sessions as :meth:`WsgiSessionApp.sessions_of_user` shows it (never its id)."""

    handle: str  #: a short keyed hash of the id: what "sign out that device" sends back
    created: float
    last_active: float
    label: Any  #: what the app recorded (``bind_user(..., label=...)``), or ``None``
    sockets: int  #: sockets connected now, in every process that answered the count
    current: bool = False  #: whether it is the session given as ``current``


class UserIndex:
    """Reads and changes the per-user index records of a :class:`~wsgisession.store.Store`."""

    def __init__(self, *, store: Store, user_key: str = DEFAULT_USER_KEY,
                 ttl: Callable[[], int | None] = lambda: None) -> None:
        self.store = store
        self.user_key = user_key
        self._ttl = ttl  # how long an index may be kept after its last write (None: as long as sessions live)
        self._token = orjson.dumps(user_key).decode()  # how the key shows in a stored record's text

    # -- what a session's stored text says ------------------------------------
    def may_be_bound(self, text: str | None) -> bool:
        """Whether a stored text can hold the user key (a substring test: the cheap case is no)."""
        return text is not None and self._token in text

    # -- changes, called with the session's lock held --------------------------
    def moved(self, session_id: str, old_user: str | None, new_user: str | None) -> None:
        """The session's user key changed: out of the old user's index, into the new one's."""
        if old_user == new_user:
            return
        if old_user is not None:
            self._change(old_user, remove=session_id)
        if new_user is not None:
            self._change(new_user, add=session_id)

    def renamed(self, old_id: str, new_id: str, old_user: str | None, new_user: str | None) -> None:
        """A rotation: ``old_id`` leaves ``old_user``'s index, ``new_id`` joins ``new_user``'s."""
        if old_user is not None and old_user == new_user:
            self._change(old_user, remove=old_id, add=new_id)
            return
        if old_user is not None:
            self._change(old_user, remove=old_id)
        if new_user is not None:
            self._change(new_user, add=new_id)

    def removed(self, session_id: str, user: str | None) -> None:
        if user is not None:
            self._change(user, remove=session_id)

    # -- reading ----------------------------------------------------------------
    def ids(self, user_id: str) -> list[str]:
        """The session ids in a user's index (some may have expired since)."""
        return _ids(self.store.read(index_id(user_id)))

    def prune(self, user_id: str, dead: set[str]) -> None:
        """Drop ``dead`` ids (gone, expired, or another user's now) from a user's index."""
        if dead:
            self._change(user_id, drop=dead)

    # -- the index's own transaction ------------------------------------------
    def _change(self, user_id: str, *, add: str | None = None, remove: str | None = None,
                drop: set[str] | None = None) -> None:
        key = index_id(user_id)
        with self.store.transaction(key) as txn:
            ids = _ids(txn.text)
            kept = [i for i in ids if i != remove and i != add and not (drop and i in drop)]
            if add is not None:
                kept.append(add)
            if kept == ids:
                return
            if kept:
                txn.write(orjson.dumps({"index": "user", "sessions": kept}).decode(), self._ttl())
            else:
                txn.remove()


def _ids(text: str | None) -> list[str]:
    if text is None:
        return []
    try:
        raw = orjson.loads(text)
        ids = raw["sessions"] if isinstance(raw, dict) and raw.get("index") == "user" else []
    except (orjson.JSONDecodeError, KeyError, TypeError):
        log.warning("an unreadable user index was ignored")
        return []
    return [i for i in ids if isinstance(i, str)]


def bound_user(record: Record | None, key: str) -> str | None:
    """The user of a (live) record, or ``None``."""
    return None if record is None else user_of(record.data, key)
