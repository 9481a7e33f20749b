"""The file store: a Beaker namespace manager that keeps each namespace in one JSON file.

Files live under ``<data_dir>/wsgisession/<aa>/<sha256>.json``: the name is a
digest of the namespace, so no namespace can reach outside the directory.
Writes go to a temporary file that is renamed into place, so a reader never
sees half a record. On Linux the rename is an exchange (``renameat2`` with
``RENAME_EXCHANGE``) followed by unlinking the old file: a plain rename over an
existing file makes ext4 start writing the new file's blocks back at once
(``auto_da_alloc``), which cost ~0.1 ms of CPU and ~0.2 ms per save here. The
price: after an operating-system crash (not a process crash) a session saved in
the last seconds may read as empty, which is treated as no session.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import itertools
import json
import logging
import os
from typing import Any, Callable

import orjson
from beaker.container import NamespaceManager

from ..locks import FileLock
from .base import KEY, Backend, Transaction

log = logging.getLogger(__name__)

_serial = itertools.count()


def _exchanger() -> Callable[[str, str], bool] | None:
    """``renameat2(RENAME_EXCHANGE)`` from the C library, if there is one (Linux, glibc 2.28+)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2

    def exchange(source: str, target: str) -> bool:
        """Swap two existing paths atomically; False if this file system cannot."""
        if renameat2(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), rename_exchange) == 0:
            return True
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.ENOENT, errno.EOPNOTSUPP):
            return False  # unsupported here, or no file to exchange with: rename instead
        raise OSError(code, os.strerror(code), target)

    return exchange


_exchange = _exchanger()


@functools.lru_cache(maxsize=16)
def _root(data_dir: str) -> str:
    return os.path.join(data_dir, "wsgisession")


class FileNamespaceManager(NamespaceManager):  # type: ignore[misc]
    """Stores ``str`` values in ``<root>/<aa>/<digest>.json``; never unpickles."""

    def __init__(self, namespace: str, data_dir: str | None = None, file_dir: str | None = None, **_: Any) -> None:
        super().__init__(namespace)
        if not (file_dir or data_dir):
            raise ValueError("the file backend needs data_dir (beaker.session.data_dir)")
        self.root = file_dir or _root(str(data_dir))
        digest = hashlib.sha256(namespace.encode("utf-8")).hexdigest()
        self.directory = f"{self.root}/{digest[:2]}"  # POSIX paths (this backend locks with flock)
        self.file = f"{self.directory}/{digest}.json"
        self.lock_file = f"{self.directory}/{digest}.lock"  # where the namespace's cross-process lock lives

    def make_directories(self) -> None:
        # makedirs' mode applies to the last directory only: make both private
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def _read(self) -> dict[str, str]:
        try:
            with open(self.file, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("ignoring a corrupt session file %s", os.path.basename(self.file))
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, str]) -> None:
        if not data:
            self.do_remove()
            return
        try:
            payload = orjson.dumps(data)
        except TypeError:  # not written by us (an integer past 64 bits, say)
            payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
        tmp = f"{self.directory}/.tmp-{os.getpid()}-{next(_serial)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the first write under this prefix: make the directories
            self.make_directories()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            if _exchange is not None and _exchange(tmp, self.file):
                os.unlink(tmp)  # now the old file
            else:
                os.replace(tmp, self.file)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def replace_value(self, key: str, value: str) -> None:
        """Make ``key`` the namespace's only key (one write, no read): what the session store does."""
        if not isinstance(value, str):
            raise TypeError("the wsgisession file backend stores str values only")
        self._write({key: value})

    def __getitem__(self, key: str) -> str:
        value = self._read()[key]
        if not isinstance(value, str):  # not written by us
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._read()

    def has_key(self, key: str) -> bool:
        return key in self

    def set_value(self, key: str, value: str, expiretime: int | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError("the wsgisession file backend stores str values only")
        data = self._read()
        data[key] = value
        self._write(data)

    def __setitem__(self, key: str, value: str) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        data = self._read()
        del data[key]
        self._write(data)

    def do_remove(self) -> None:
        try:
            os.unlink(self.file)
        except FileNotFoundError:
            pass

    def keys(self) -> list[str]:
        return list(self._read())

    def lock_path(self, *, create_directories: bool = True) -> str:
        """Where the cross-process lock of this namespace lives."""
        if create_directories:
            self.make_directories()
        return self.lock_file


class FileBackend(Backend):
    """The file store under ``data_dir``; a polled ``flock`` per session serializes processes."""

    name = "file"

    def __init__(self, *, data_dir: str, **options: Any) -> None:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        super().__init__(FileNamespaceManager, data_dir=data_dir, **options)

    def write(self, key: str, text: str, ttl: int | None = None) -> None:
        manager = self._managers.get(key)
        if manager is None:
            manager = self.manager(key)
        try:
            manager.replace_value(KEY, text)  # the session is the file's only key: no read first
        except OSError as exc:
            raise self.fault(exc) from exc

    def begin(self, key: str, timeout: float) -> Transaction:
        manager = self.manager(key)
        assert isinstance(manager, FileNamespaceManager)
        lock = FileLock(manager.lock_file, make_directory=manager.make_directories)
        try:
            lock.acquire(timeout)
        except OSError as exc:
            raise self.fault(exc) from exc
        try:
            return _Locked(self, key, lock)
        except BaseException:
            try:
                lock.release()
            except OSError:
                log.warning("could not release a session's file lock after a failed read")
            raise


class _Locked(Transaction):
    """A file transaction: the commit writes the file, then drops the lock."""

    __slots__ = ("lock",)

    def __init__(self, backend: FileBackend, key: str, lock: FileLock) -> None:
        super().__init__(backend, key, backend.read(key))  # read under the lock
        self.lock = lock

    def commit(self) -> None:
        try:
            Transaction.commit(self)
        finally:
            try:
                self.lock.release()
            except OSError as exc:
                raise self.backend.fault(exc) from exc
