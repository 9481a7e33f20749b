"""``with session.atomic():`` -- a read-modify-write under the session's lock.

A class, not a generator: it is on every atomic update's path.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .codec import snapshot
from .errors import SessionEnded

if TYPE_CHECKING:
    from .session import SharedSession


def merge(data: dict[str, Any], sets: dict[str, Any], dels: list[str]) -> None:
    """Apply a session's changes to ``data``."""
    data.update(sets)
    for key in dels:
        data.pop(key, None)


class Atomic:
    """The context manager :meth:`SharedSession.atomic` returns.

    Entering takes the session's lock, loads the stored state fresh and
    re-applies this session's unsaved changes on top; leaving saves (the
    outermost block only) and releases. An exception in the block undoes the
    block's changes and saves nothing.
    """

    __slots__ = ("session", "entry", "outer", "sets", "dels", "rollback")

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
        self.outer = outer = session._locked_base
        store = manager.store
        self.entry = entry = store.acquire(session.id)
        try:
            if session._pending_load:
                self.sets, self.dels = {}, []
                session._ensure()  # the first load is fresh already: we hold the lock
            else:
                self.sets, self.dels = sets, dels = session.changes()
                if not outer:
                    found = manager.read(session.id)
                    if found is not None:
                        record, text = found
                        known = record.snapshot
                        session._saved(record, text, known if known is not None else snapshot(record.data), True)
                    elif not session.is_new:
                        session._gone("the session ended meanwhile")
                    if sets or dels:
                        session._clean = False
                        merge(session._data, sets, dels)
            self.rollback = json.dumps(session._data) if outer else None
        except BaseException:
            store.release(entry)
            raise
        session._locked_base = True  # the snapshot is the stored state while we hold the lock
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
                    merge(session._data, self.sets, self.dels)
            elif not self.outer:
                session.save()
        finally:
            session._locked_base = self.outer
            session._manager.store.release(self.entry)
