"""A Beaker namespace manager that keeps each namespace in one JSON file.

Files live under ``<data_dir>/wsgisession/<aa>/<sha256>.json``: the name is a
digest of the namespace, so no namespace can reach outside the directory.
Writes go to a temporary file that is renamed into place, so a reader never
sees half a record.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from typing import Any

from beaker.container import NamespaceManager

log = logging.getLogger(__name__)


class FileNamespaceManager(NamespaceManager):  # type: ignore[misc]
    """Stores ``str`` values in ``<root>/<aa>/<digest>.json``; never unpickles."""

    def __init__(self, namespace: str, data_dir: str | None = None, file_dir: str | None = None, **_: Any) -> None:
        super().__init__(namespace)
        if not (file_dir or data_dir):
            raise ValueError("the file backend needs data_dir (beaker.session.data_dir)")
        self.root = file_dir or os.path.join(str(data_dir), "wsgisession")
        digest = hashlib.sha256(namespace.encode("utf-8")).hexdigest()
        self.directory = os.path.join(self.root, digest[:2])
        self.file = os.path.join(self.directory, digest + ".json")

    def _makedirs(self) -> None:
        # makedirs' mode applies to the last directory only: make both private
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def _read(self) -> dict[str, str]:
        try:
            with open(self.file, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("ignoring a corrupt session file %s", os.path.basename(self.file))
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, str]) -> None:
        if not data:
            self.do_remove()
            return
        self._makedirs()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.file)
        except BaseException:
            os.unlink(tmp)
            raise

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

    def lock_path(self) -> str:
        """Where the cross-process lock of this namespace lives."""
        self._makedirs()
        return self.file[: -len(".json")] + ".lock"
