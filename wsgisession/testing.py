"""Testing apps that use wsgisession: HTTP and Socket.IO clients sharing one cookie jar.

Needs ``pip install wsgisession[testing]`` (requests and python-socketio's client).
Point it at a running server (``wsgisession serve``, gunicorn, ...)::

    client = SessionClient("http://127.0.0.1:6543")
    client.get("/login", params={"user": "ann"})
    socket = client.socket()                 # joins the session the cookie names
    assert socket.call("whoami") == "ann"
    socket.disconnect()
    assert SessionClient("http://127.0.0.1:6543").refusal() == "no_cookie"
"""
from __future__ import annotations

from typing import Any

import requests
import socketio

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],  # polling first, then the upgrade
}


def cookie_header(http: requests.Session) -> str:
    """The ``Cookie`` header a browser would send from ``http``'s cookie jar."""
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def connect_socket(
    base_url: str,
    *,
    cookie: str | None = None,
    transport: str = "websocket",
    origin: str | None = "same",
    namespaces: list[str] | None = None,
    headers: dict[str, str] | None = None,
    wait_timeout: float = 10,
) -> socketio.Client:
    """A connected python-socketio client (no reconnection).

    A refused connection raises ``socketio.exceptions.ConnectionError`` whose
    ``reason`` attribute is the server's refusal reason (or ``None``).
    ``origin="same"`` sends the server's own origin, as a page of it would;
    ``None`` sends none (websocket-client always sends the URL's origin).
    """
    sent: dict[str, str] = dict(headers or {})
    if cookie is not None:
        sent["Cookie"] = cookie
    if origin == "same":
        origin = base_url
    if origin is not None and TRANSPORTS[transport][0] == "polling":
        sent["Origin"] = origin
    client = socketio.Client(reconnection=False)
    refusals: list[Any] = []
    for namespace in namespaces or ["/"]:
        client.on("connect_error", refusals.append, namespace=namespace)
    try:
        client.connect(base_url, headers=sent, transports=TRANSPORTS[transport], namespaces=namespaces,
                       wait_timeout=wait_timeout)
    except socketio.exceptions.ConnectionError as exc:
        first = refusals[0] if refusals else None
        exc.reason = str(first.get("message")) if isinstance(first, dict) else None
        raise
    return client


def refusal_reason(base_url: str, **kwargs: Any) -> str | None:
    """The reason a connection is refused with (``connect_error``); ``None`` if it is accepted."""
    try:
        client = connect_socket(base_url, **kwargs)
    except socketio.exceptions.ConnectionError as exc:
        reason = getattr(exc, "reason", None)
        if reason is None:
            raise
        return str(reason)
    client.disconnect()
    return None


class SessionClient:
    """A requests session plus Socket.IO clients that send its cookies."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.http.get(self.base_url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.http.post(self.base_url + path, **kwargs)

    @property
    def cookie(self) -> str:
        return cookie_header(self.http)

    def socket(self, **kwargs: Any) -> socketio.Client:
        """A socket that joins this client's session (see :func:`connect_socket`)."""
        return connect_socket(self.base_url, cookie=self.cookie or None, **kwargs)

    def refusal(self, **kwargs: Any) -> str | None:
        """The reason this client's socket would be refused with, or ``None``."""
        return refusal_reason(self.base_url, cookie=self.cookie or None, **kwargs)
