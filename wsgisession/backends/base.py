"""What every backend offers the store: read, write, remove, and one transaction.

A backend keeps one text per session id, through Beaker namespace managers of
ours (one namespace per id, one key in it). Its transaction is the store's one
way to change a session safely across processes: :meth:`Backend.begin` takes
the backend's cross-process lock and reads the latest text
(:attr:`Transaction.text`); the holder writes or removes through the
transaction; :meth:`Transaction.commit` makes that durable and frees the lock.
Nothing else does a store's I/O under a lock.

Ids are format-checked (:func:`wsgisession.ids.is_session_id`) before a
namespace manager, and so any key or path, is built for them. A backend turns
its own faults (``faults``: the store cannot be reached) into
:class:`~wsgisession.errors.StoreUnavailable`.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from beaker.container import NamespaceManager

from ..errors import StoreUnavailable
from ..ids import is_session_id

log = logging.getLogger("wsgisession.store")

#: the key of the session's text inside its namespace
KEY = "session"

#: namespace managers kept for reuse, per backend (they hold no data; building one costs about as much as a read)
KEPT_MANAGERS = 4096


class Transaction:
    """One holding of a session's cross-process lock, with the latest text read under it.

    Writes are staged and made by :meth:`commit`, on every backend alike: until
    then others (and direct reads of the store) see the stored text as it was,
    while ``text`` follows the holder's own writes.
    """

    __slots__ = ("backend", "key", "text", "entry", "depth", "after", "change")

    def __init__(self, backend: Backend, key: str, text: str | None) -> None:
        self.backend = backend
        self.key = key
        self.text = text  # as read under the lock
        self.entry: Any = None  # the store's in-process lock entry (wsgisession.locks.Entry), if any
        self.depth = 0  # where the backend's lock is store-wide, the store's count of holdings instead
        self.after: list[Callable[[], None]] | None = None
        self.change: tuple[str, int | None] | None = None  # (text, ttl) to write, ("", -1) to remove

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the outermost holder's commit succeeded (telling others of the change)."""
        if self.after is None:
            self.after = []
        self.after.append(callback)

    def write(self, text: str, ttl: int | None = None) -> None:
        """Store ``text`` at the commit (``ttl``: seconds the backend may keep it, where it expires records)."""
        self.change = (text, ttl)
        self.text = text

    def remove(self) -> None:
        """Forget the session at the commit."""
        self.change = ("", -1)
        self.text = None

    def settle(self) -> None:
        """Once every lock is given back: wait until the commit is durable, if it was left to others.

        SQLite's group commit (:class:`wsgisession.backends.sqlite.Group`); at once on the other backends.
        """

    def commit(self) -> None:
        """Make the staged write (or removal), then free the cross-process lock (none here)."""
        change, self.change = self.change, None
        if change is not None:
            if change[1] == -1:
                self.backend.remove(self.key)
            else:
                self.backend.write(self.key, change[0], change[1])


class Backend:
    """A backend over one class of our namespace managers; subclasses add their lock to :meth:`begin`."""

    name = ""
    #: whether the backend drops a record past the ``ttl`` of its last write
    expires = False
    #: the exceptions that mean "the store is unavailable" (the store turns them into StoreUnavailable)
    faults: tuple[type[BaseException], ...] = (OSError,)
    #: whether the backend's lock covers the whole store (then the store takes it first: :meth:`reserve`)
    store_wide = False

    def __init__(self, manager_class: Callable[..., NamespaceManager], **options: Any) -> None:
        self._class = manager_class
        self._options = options
        self._managers: dict[str, NamespaceManager] = {}

    def manager(self, key: str) -> NamespaceManager:
        """The namespace manager of ``key``; ``ValueError`` for anything but an id we issue."""
        manager = self._managers.get(key)
        if manager is None:
            if not is_session_id(key):
                raise ValueError("not a session id")
            managers = self._managers
            if len(managers) >= KEPT_MANAGERS:
                del managers[next(iter(managers))]  # the oldest
            manager = managers[key] = self._class(key, **self._options)
        return manager

    def fault(self, exc: BaseException) -> StoreUnavailable:
        """The error for one of ``faults`` (logged once here, as :meth:`explain` words it)."""
        log.error("the %s session store is unavailable: %s", self.name, self.explain(exc))
        return StoreUnavailable(f"the {self.name} session store is unavailable", backend=self.name)

    def explain(self, exc: BaseException) -> object:
        """What the log says of a fault: the library's own error, unless the backend can say it better."""
        return exc

    def read(self, key: str) -> str | None:
        """The text stored for ``key``; ``None`` if there is none."""
        manager = self._managers.get(key)  # the usual case, without a call
        if manager is None:
            manager = self.manager(key)
        try:
            return str(manager[KEY])
        except KeyError:
            return None
        except self.faults as exc:
            raise self.fault(exc) from exc

    def write(self, key: str, text: str, ttl: int | None = None) -> None:
        """Store ``text`` for ``key``; ``ttl`` (seconds) lets a backend that expires records drop it."""
        manager = self._managers.get(key)
        if manager is None:
            manager = self.manager(key)
        try:
            manager.set_value(KEY, text, expiretime=ttl)
        except self.faults as exc:
            raise self.fault(exc) from exc

    def remove(self, key: str) -> None:
        """Forget ``key`` (no error if it is gone)."""
        try:
            self.manager(key).do_remove()
        except self.faults as exc:
            raise self.fault(exc) from exc

    def reserve(self, timeout: float) -> float:
        """A store-wide backend's lock, taken before any session's (reentrant); the seconds waited.

        Taken after a session's lock, a lock that covers every session could meet
        a holder waiting for that session's lock (a deadlock until the timeout).
        """
        return 0.0

    def unreserve(self) -> None:
        """Give back one :meth:`reserve`."""

    def begin(self, key: str, timeout: float) -> Transaction:
        """Take the cross-process lock of ``key`` (within ``timeout``) and read its latest text."""
        return Transaction(self, key, self.read(key))
