"""wsgisession: one shared, live, safe session for a WSGI app and its Socket.IO events.

The names below are imported on first use, so that ``wsgisession serve`` and
our gunicorn worker can monkey-patch the standard library with gevent before
anything imports ``socket`` or ``ssl``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "WsgiSessionApp": "app",
    "filter_app_factory": "app",
    "make_app": "app",
    "BadOrigin": "errors",
    "BadSignature": "errors",
    "ConfigurationError": "errors",
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
    "SessionManager": "manager",
    "SessionMiddleware": "middleware",
    "SessionNamespace": "namespace",
    "SessionSockets": "realtime",
    "SharedSession": "session",
}

__all__ = [
    "BadOrigin",
    "BadSignature",
    "ConfigurationError",
    "LockTimeout",
    "MessageTooBig",
    "NoCookie",
    "SessionEnded",
    "SessionExpired",
    "SessionManager",
    "SessionMiddleware",
    "SessionNamespace",
    "SessionRefused",
    "SessionSockets",
    "SessionValueError",
    "SharedSession",
    "StoreUnavailable",
    "UnknownSession",
    "WsgiSessionApp",
    "WsgiSessionError",
    "filter_app_factory",
    "make_app",
    "__version__",
]

if TYPE_CHECKING:
    from .app import WsgiSessionApp, filter_app_factory, make_app
    from .errors import (
        BadOrigin,
        BadSignature,
        ConfigurationError,
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
    from .manager import SessionManager
    from .middleware import SessionMiddleware
    from .namespace import SessionNamespace
    from .realtime import SessionSockets
    from .session import SharedSession


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wsgisession' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
