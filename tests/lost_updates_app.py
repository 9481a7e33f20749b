"""The lab app (tests/apps.py) plus what the lost-update tests need.

Served as ``use = call:tests.lost_updates_app:app_factory``.

HTTP:   GET /slow_get?delay=S  reads the session, waits S seconds, answers it (read-only)
        GET /incr_slow         ``/incr`` that yields to other greenlets inside ``atomic()``
        GET /set_slow?k=v      ``/set`` that yields to other greenlets before the save
        GET /pid               the worker's process id (does not touch the session)
        every answer has an ``X-Worker-Pid`` header
Socket: ``slow_get`` (delay)   the same, as an event
        ``incr_slow``, ``set_slow`` (values), as over HTTP
        ``pid``                the worker's process id
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Iterable

import gevent
from werkzeug.wrappers import Request, Response

from tests.apps import lab, register
from wsgisession import SharedSession, WsgiSessionApp, filter_app_factory

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The lab, plus ``/slow_get`` and ``/pid``; every answer names its worker (``X-Worker-Pid``)."""
    path = environ.get("PATH_INFO", "")
    start_response = _with_pid(start_response)
    if path == "/slow_get":
        request = Request(environ)
        session: SharedSession = environ["beaker.session"]
        data = dict(session)
        gevent.sleep(float(request.args.get("delay", "1")))
        return Response(json.dumps(data), mimetype="application/json")(environ, start_response)
    if path == "/pid":
        return Response(str(os.getpid()))(environ, start_response)
    if path == "/incr_slow":
        incr_slow(environ["beaker.session"])
        return Response(json.dumps(dict(environ["beaker.session"])), mimetype="application/json")(
            environ, start_response
        )
    if path == "/set_slow":
        set_slow(environ["beaker.session"], dict(Request(environ).args.items()))
        return Response(json.dumps(dict(environ["beaker.session"])), mimetype="application/json")(
            environ, start_response
        )
    return lab(environ, start_response)


def incr_slow(session: SharedSession) -> int:
    """An atomic increment that lets other greenlets run between its read and its write."""
    with session.atomic():
        n = int(session.get("n", 0))
        gevent.sleep(0.001)
        session["n"] = n + 1
    return n + 1


def set_slow(session: SharedSession, values: dict[str, Any]) -> None:
    """Set keys, then let other greenlets run before the (merged) save."""
    session.update(values)
    gevent.sleep(0.005)


def _with_pid(start_response: StartResponse) -> StartResponse:
    def wrapped(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return wrapped


def app_factory(global_conf: dict[str, str], **local_conf: str) -> WsgiSessionApp:
    composed = filter_app_factory(app, global_conf, **local_conf)
    register(composed)

    @composed.on("slow_get")
    def slow_get(sid: str, session: SharedSession, delay: float = 1.0) -> dict[str, Any]:
        data = dict(session)
        gevent.sleep(delay)
        return data

    @composed.on("incr_slow")
    def on_incr_slow(sid: str, session: SharedSession) -> int:
        return incr_slow(session)

    @composed.on("set_slow")
    def on_set_slow(sid: str, session: SharedSession, values: dict[str, Any]) -> bool:
        set_slow(session, values)
        return True

    @composed.on("pid")
    def pid(sid: str, session: SharedSession) -> int:
        return os.getpid()

    return composed
