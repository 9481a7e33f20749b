"""An in-process test client: HTTP and sockets with one cookie jar, no server.

    client = TestClient(app)                    # make_app(...), or a Flask app with WsgiSession
    client.get("/login?user=ann")
    socket = client.socket()                    # the real connect path: origin, cookie, refusal reasons
    assert socket.call("whoami") == "ann"       # an event and its acknowledgement
    client.get("/logout")
    assert socket.get_received()[-1] == {"name": "session_ended", "args": [{"reason": "logout"}], "namespace": "/"}
    assert TestClient(app).refusal() == "no_cookie"

The HTTP side is Werkzeug's test client (Flask's, for a Flask app) over the
whole WSGI stack. A socket drives the app's own python-socketio server through
its Engine.IO entry points, with a handshake environ built like a browser
page's of the same origin (``Origin``, the jar's cookies): every check and
handler of the session layer runs as on a real server. Each event is handled
before :meth:`TestSocket.emit` returns (in the caller's greenlet), so what the
handler emitted is in :meth:`TestSocket.get_received`. Expiry is tested with
the app's ``clock`` (``make_app(clock=...)``) and :meth:`TestClient.sweep`.
For end-to-end tests against a running server, see :mod:`wsgisession.testing`.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import gevent
import socketio
from socketio import packet
from werkzeug.test import Client, EnvironBuilder, TestResponse

from .app import WsgiSessionApp
from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_ROUTES = "_wsgisession_test_sockets"


def session_app_of(app: Any) -> tuple[WsgiSessionApp, list[Any]]:
    """The composed app inside ``app`` (a Flask app, a wrapper), and the wrappers on the way."""
    wrappers: list[Any] = []
    current = app
    for _ in range(8):
        if isinstance(current, WsgiSessionApp):
            return current, wrappers
        wrappers.append(current)
        current = getattr(current, "wsgi_app", None) or getattr(current, "app", None)
        if current is None:
            break
    raise ConfigurationError(f"{app!r} is not served through wsgisession (no WsgiSessionApp inside it)", key="app")


class TestClient:
    """Werkzeug's test client for HTTP plus in-process sockets, sharing its cookie jar."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Any, *, base_url: str = "http://localhost", http: Client | None = None) -> None:
        self.session_app, self._wrappers = session_app_of(app)
        self.base_url = base_url.rstrip("/")
        if http is None:
            make = getattr(app, "test_client", None)  # Flask's keeps its request contexts and idioms
            http = make() if callable(make) else Client(app)
        self.http: Client = http

    # -- HTTP -------------------------------------------------------------
    def open(self, path: str, method: str = "GET", **kwargs: Any) -> TestResponse:
        return self.http.open(path, method=method, base_url=self.base_url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open(path, "GET", **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open(path, "POST", **kwargs)

    # -- sockets ----------------------------------------------------------
    def socket(self, *, namespace: str = "/", auth: Any = None, origin: str | None = "same",
               headers: dict[str, str] | None = None) -> TestSocket:
        """A socket connected with this client's cookies; raises :class:`Refused` with the reason if refused."""
        socket = TestSocket(self, origin=origin, headers=headers)
        socket.connect(namespace=namespace, auth=auth)
        return socket

    def refusal(self, *, namespace: str = "/", **kwargs: Any) -> str | None:
        """The reason a socket of this client is refused with, or ``None`` (then it is disconnected)."""
        try:
            socket = self.socket(namespace=namespace, **kwargs)
        except Refused as exc:
            return exc.reason
        socket.disconnect(namespace=namespace)
        return None

    def handshake_environ(self, *, origin: str | None, headers: dict[str, str] | None) -> WSGIEnvironment:
        """The environ of a socket's handshake: the jar's cookies, ``Origin`` as a page of ``origin`` sends it."""
        sent = dict(headers or {})
        if origin == "same":
            origin = self.base_url
        if origin is not None:
            sent.setdefault("Origin", origin)
        path = "/" + self.session_app.socketio_path.strip("/") + "/"
        environ: WSGIEnvironment = EnvironBuilder(
            path=path, base_url=self.base_url, query_string="EIO=4&transport=polling", headers=list(sent.items())
        ).get_environ()
        self.http._add_cookies_to_wsgi(environ)
        for wrapper in self._wrappers:  # what the app's own wrappers put in every environ (flask.app)
            prepare = getattr(wrapper, "prepare_environ", None)
            if prepare is not None:
                prepare(environ)
        return environ

    def sweep(self) -> int:
        """Run the expiry sweep now (a real server runs it every ``sweep_interval``); returns how many ended."""
        return self.session_app.sockets.lifecycle.sweep()


class Refused(Exception):
    """A test socket's connection was refused; ``reason`` is what the client's ``connect_error`` carries."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(f"connection refused: {reason}")
        self.reason = reason


class TestSocket:
    """One in-process Socket.IO client (one Engine.IO connection, any namespaces)."""

    __test__ = False

    def __init__(self, client: TestClient, *, origin: str | None, headers: dict[str, str] | None) -> None:
        self.client = client
        self.sio: socketio.Server = client.session_app.sio
        self.eio_sid = uuid.uuid4().hex
        self.received: list[dict[str, Any]] = []
        self.connected: dict[str, bool] = {}
        self.refusals: dict[str, str | None] = {}
        self._acks: dict[int, list[Any]] = {}
        self._next_id = 0
        self._partial: Any = None
        #: the namespace of the first connect: what emit, call, get_received ... use when given none
        self.namespace = "/"
        _routes(self.sio)[self.eio_sid] = self
        self.sio._handle_eio_connect(self.eio_sid, client.handshake_environ(origin=origin, headers=headers))

    @property
    def sid(self) -> str | None:
        """The socket's sid in its namespace (that of its first connect)."""
        return self.sio.manager.sid_from_eio_sid(self.eio_sid, self.namespace)  # type: ignore[no-any-return]

    def connect(self, *, namespace: str = "/", auth: Any = None) -> None:
        """Connect a namespace; raises :class:`Refused` with the server's reason."""
        if not self.connected:
            self.namespace = namespace
        self._send(packet.Packet(packet.CONNECT, auth, namespace=namespace))
        if not self.connected.get(namespace):
            raise Refused(self.refusals.get(namespace))

    def emit(self, event: str, *args: Any, namespace: str | None = None) -> None:
        """Send an event; its handler has run when this returns."""
        namespace = self._require(namespace)
        self._send(packet.Packet(packet.EVENT, data=[event, *args], namespace=namespace))

    def call(self, event: str, *args: Any, namespace: str | None = None) -> Any:
        """Send an event and return its acknowledgement (one value, a list of several, ``None`` for none)."""
        namespace = self._require(namespace)
        self._next_id += 1
        ack_id = self._next_id
        self._send(packet.Packet(packet.EVENT, data=[event, *args], namespace=namespace, id=ack_id))
        if ack_id not in self._acks:
            raise AssertionError(f"no acknowledgement for {event!r} (no handler, or the socket was disconnected)")
        values = self._acks.pop(ack_id)
        return values[0] if len(values) == 1 else (values or None)

    def get_received(self, namespace: str | None = "") -> list[dict[str, Any]]:
        """The events received since the last call (``{"name", "args", "namespace"}``), then forgotten.

        Those of the socket's namespace by default; of every namespace with ``namespace=None``.
        """
        namespace = namespace if namespace != "" else self.namespace
        taken = [m for m in self.received if namespace is None or m["namespace"] == namespace]
        self.received = [m for m in self.received if m not in taken]
        return taken

    def is_connected(self, namespace: str | None = None) -> bool:
        return self.connected.get(namespace or self.namespace, False)

    def disconnect(self, *, namespace: str | None = None) -> None:
        """Disconnect a namespace, as the client's ``disconnect()``."""
        namespace = namespace or self.namespace
        if self.connected.get(namespace):
            self._send(packet.Packet(packet.DISCONNECT, namespace=namespace))
            self.connected[namespace] = False
        if not any(self.connected.values()):
            _routes(self.sio).pop(self.eio_sid, None)

    # -- plumbing ---------------------------------------------------------
    def _require(self, namespace: str | None) -> str:
        namespace = namespace or self.namespace
        if not self.connected.get(namespace):
            raise RuntimeError(f"the test socket is not connected to {namespace!r}")
        return namespace

    def _send(self, pkt: packet.Packet) -> None:
        sio = self.sio
        encoded = pkt.encode()
        was = sio.async_handlers
        sio.async_handlers = False  # handled now, in this greenlet: what it emits is here when this returns
        try:
            for part in encoded if isinstance(encoded, list) else [encoded]:
                sio._handle_eio_message(self.eio_sid, part)
        finally:
            sio.async_handlers = was
        gevent.sleep(0)  # what the handler left to run after its ack (a disconnect of an ended session)

    def receive_eio(self, data: Any) -> None:
        """One Engine.IO message from the server (a packet, or a binary attachment of one)."""
        if self._partial is not None:
            if self._partial.add_attachment(data):
                pkt, self._partial = self._partial, None
                self.receive(pkt)
            return
        pkt = self.sio.packet_class(encoded_packet=data)
        if pkt.attachment_count:
            self._partial = pkt
        else:
            self.receive(pkt)

    def receive(self, pkt: packet.Packet) -> None:
        """One Socket.IO packet from the server, round-tripped through its encoding."""
        encoded = pkt.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        pkt = self.sio.packet_class(encoded_packet=parts[0])
        for attachment in parts[1:]:
            pkt.add_attachment(attachment)
        namespace = pkt.namespace or "/"
        kind = pkt.packet_type
        if kind in (packet.EVENT, packet.BINARY_EVENT):
            self.received.append({"name": pkt.data[0], "args": list(pkt.data[1:]), "namespace": namespace})
        elif kind in (packet.ACK, packet.BINARY_ACK):
            self._acks[pkt.id] = list(pkt.data or [])
        elif kind == packet.CONNECT:
            self.connected[namespace] = True
        elif kind == packet.CONNECT_ERROR:
            self.connected[namespace] = False
            data = pkt.data
            self.refusals[namespace] = str(data.get("message")) if isinstance(data, dict) else None
        elif kind == packet.DISCONNECT:
            self.connected[namespace] = False


def _routes(sio: socketio.Server) -> dict[str, TestSocket]:
    """The server's test sockets by Engine.IO sid; installs the routing of its sends once."""
    routes: dict[str, TestSocket] | None = getattr(sio, _ROUTES, None)
    if routes is None:
        routes = {}
        send_packet, send_eio_packet = sio._send_packet, sio._send_eio_packet

        def route_packet(eio_sid: str, pkt: packet.Packet) -> None:
            socket = routes.get(eio_sid)
            if socket is None:
                return send_packet(eio_sid, pkt)  # type: ignore[no-any-return]
            socket.receive(pkt)
            return None

        def route_eio_packet(eio_sid: str, eio_pkt: Any) -> None:
            socket = routes.get(eio_sid)
            if socket is None:
                return send_eio_packet(eio_sid, eio_pkt)  # type: ignore[no-any-return]
            socket.receive_eio(eio_pkt.data)
            return None

        sio._send_packet = route_packet
        sio._send_eio_packet = route_eio_packet
        setattr(sio, _ROUTES, routes)
    return routes

