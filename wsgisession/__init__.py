"""wsgisession: one shared, live, safe session for a WSGI app and its Socket.IO events.

The names below are imported on first use, so that ``wsgisession serve`` and
our gunicorn worker can monkey-patch the standard library with gevent before
anything imports ``socket`` or ``ssl``. :data:`_EXPORTS` is the one list of the
public API (``__all__`` is made from it; a test checks that the imports for
type checkers below name the same things).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "WsgiSessionApp": "app",
    "filter_app_factory": "app",
    "make_app": "app",
    "CookieExchange": "cookie_exchange",
    "SessionCookie": "cookies",
    "BadOrigin": "errors",
    "BadSignature": "errors",
    "ConfigurationError": "errors",
    "CookieExchangeRefused": "errors",
    "LockTimeout": "errors",
    "MessageTooBig": "errors",
    "NoCookie": "errors",
    "SessionEnded": "errors",
    "SessionExpired": "errors",
    "SessionRefused": "errors",
    "SessionValueError": "errors",
    "StoreUnavailable": "errors",
    "UnknownSession": "errors",
    "WsgiSessionError": "errors",
    "Fingerprint": "ids",
    "SessionManager": "manager",
    "SessionMiddleware": "middleware",
    "SessionNamespace": "namespace",
    "OriginPolicy": "origins",
    "SessionSockets": "realtime",
    "SharedSession": "session",
    "Store": "store",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:
    from .app import WsgiSessionApp, filter_app_factory, make_app  # noqa: F401 (for type checkers)
    from .cookie_exchange import CookieExchange  # noqa: F401 (for type checkers)
    from .cookies import SessionCookie  # noqa: F401 (for type checkers)
    from .errors import (  # noqa: F401 (for type checkers)
        BadOrigin,
        BadSignature,
        ConfigurationError,
        CookieExchangeRefused,
        LockTimeout,
        MessageTooBig,
        NoCookie,
        SessionEnded,
        SessionExpired,
        SessionRefused,
        SessionValueError,
        StoreUnavailable,
        UnknownSession,
        WsgiSessionError,
    )
    from .ids import Fingerprint  # noqa: F401 (for type checkers)
    from .manager import SessionManager  # noqa: F401 (for type checkers)
    from .middleware import SessionMiddleware  # noqa: F401 (for type checkers)
    from .namespace import SessionNamespace  # noqa: F401 (for type checkers)
    from .origins import OriginPolicy  # noqa: F401 (for type checkers)
    from .realtime import SessionSockets  # noqa: F401 (for type checkers)
    from .session import SharedSession  # noqa: F401 (for type checkers)
    from .store import Store  # noqa: F401 (for type checkers)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wsgisession' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
