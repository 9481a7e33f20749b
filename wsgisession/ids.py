"""Session ids and the application secret: the id format, fresh ids, and fingerprints.

An id is 32 random bytes in URL-safe base64 (43 characters). Only ids of
exactly that shape ever become a store key or a path (:func:`is_session_id`).
A *fingerprint* is a short keyed hash of an id: what logs, room names and
public handles show instead of the id itself.

    >>> fingerprint = Fingerprint(secret="x" * 16 + "abcdefghijklmnop")
    >>> len(fingerprint(new_session_id()))
    16
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Sequence

from .errors import ConfigurationError

_ID = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")
MIN_SECRET_LENGTH = 32


def new_session_id() -> str:
    """Return a fresh, unguessable session id (256 random bits)."""
    return secrets.token_urlsafe(32)


#: ids that had the shape already (a set hit costs ~0.3k instructions, the pattern ~3k); emptied when full
_SHAPED: set[str] = set()
_SHAPED_MAX = 4096


def is_session_id(value: object) -> bool:
    """Tell whether ``value`` has the exact shape of an id we issue."""
    if type(value) is str:  # a str itself (a subclass could compare equal to what it is not)
        if value in _SHAPED:
            return True
        if _ID.match(value) is None:
            return False
        if len(_SHAPED) >= _SHAPED_MAX:
            _SHAPED.clear()
        _SHAPED.add(value)
        return True
    return isinstance(value, str) and _ID.match(value) is not None


def check_secret(secret: str | Sequence[str] | None) -> list[str]:
    """Return the secrets as a list (newest last), refusing weak ones."""
    if secret is None or secret == "" or secret == []:
        raise ConfigurationError(
            "a secret is required: set 'beaker.session.secret' (or secret=...) to a "
            f"random string of at least {MIN_SECRET_LENGTH} characters, for example "
            "the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
            key="secret",
        )
    secrets_ = [secret] if isinstance(secret, str) else list(secret)
    for value in secrets_:
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH or len(set(value)) < 8:
            raise ConfigurationError(
                f"the secret is too weak: use at least {MIN_SECRET_LENGTH} random characters",
                key="secret",
            )
    return secrets_


class Fingerprint:
    """A short keyed hash of session ids (16 hex characters), keyed by the newest secret."""

    __slots__ = ("_key",)

    def __init__(self, *, secret: str | Sequence[str]) -> None:
        keys = check_secret(secret)
        self._key = hashlib.sha256(("wsgisession.fingerprint" + keys[-1]).encode()).digest()

    def __call__(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()[:16]
