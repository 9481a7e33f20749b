"""The example's views: ``request.session`` is the session its socket handlers use."""
from __future__ import annotations

import html
import secrets
import time
from pathlib import Path
from string import Template
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther, HTTPUnauthorized
from pyramid.request import Request
from pyramid.response import FileResponse, Response
from pyramid.security import forget, remember
from pyramid.view import view_config

from .security import USERS

HERE = Path(__file__).parent
CLIENT_JS = HERE.parent.parent / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
PAGES = {name: Template((HERE / "templates" / f"{name}.html").read_text(encoding="utf-8"))
         for name in ("signed_in", "signed_out")}


@view_config(route_name="home", request_method="GET")
def home(request: Request) -> Response:
    page = "signed_in" if request.authenticated_userid else "signed_out"
    csrf = html.escape(request.session.get_csrf_token())
    body = PAGES[page].substitute(
        user=html.escape(request.authenticated_userid or ""),
        n=int(request.session.get("n", 0)),
        csrf=csrf,
        flash="".join(f"<p class=flash>{html.escape(str(m))}</p>" for m in request.session.pop_flash()),
        devices="".join(device_item(device, csrf) for device in devices(request)) if page == "signed_in" else "",
    )
    return Response(body, content_type="text/html")


@view_config(route_name="client_js", request_method="GET")
def client_js(request: Request) -> Response:
    return FileResponse(str(CLIENT_JS), request=request, content_type="text/javascript")


@view_config(route_name="login", request_method="POST")
def login(request: Request) -> Response:
    name = request.POST.get("user", "")
    if name not in USERS or not secrets.compare_digest(request.POST.get("password", ""), USERS[name]):
        raise HTTPUnauthorized("wrong user or password")
    headers = remember(request, name)  # a new session id at login
    request.session.bind_user(name, label=request.POST.get("device") or request.user_agent or "a browser")
    request.session.setdefault("n", 0)
    request.session.flash(f"Welcome, {name}.")
    return HTTPSeeOther(request.route_url("home"), headers=headers)


@view_config(route_name="logout", request_method="POST", permission="use")
def logout(request: Request) -> Response:
    headers = forget(request)  # ends the session: every socket of it gets session_ended
    return HTTPSeeOther(request.route_url("home"), headers=headers)


@view_config(route_name="incr", request_method="POST", permission="use", renderer="json")
def incr(request: Request) -> dict[str, Any]:
    with request.session.atomic():  # the same counter as the socket's incr, never a lost update
        n = request.session["n"] = request.session.get("n", 0) + 1
    request.wsgisession.emit_to_session(request.session.id, "count", n)  # every tab of this session
    return {"n": n}


def devices(request: Request) -> list[dict[str, Any]]:
    """The signed-in user's sessions, "where you're signed in" (public handles, never ids)."""
    return [{"handle": d.handle, "label": d.label, "sockets": d.sockets, "current": d.current,
             "last_active": time.strftime("%H:%M:%S", time.localtime(d.last_active))}
            for d in request.wsgisession.sessions_of_user(request.authenticated_userid, current=request.session)]


def device_item(device: dict[str, Any], csrf: str) -> str:
    label = html.escape(str(device["label"])[:80])
    if device["current"]:
        action = " <b>(this device)</b>"
    else:
        action = (f' <form method="post" action="/devices/end" style="display:inline">'
                  f'<input type="hidden" name="csrf_token" value="{csrf}">'
                  f'<input type="hidden" name="handle" value="{html.escape(device["handle"])}">'
                  f'<button class="end">Sign out that device</button></form>')
    return (f'<li class="device"><span class="label">{label}</span>, last active {device["last_active"]}, '
            f'<span class="sockets">{device["sockets"]}</span> live tab(s){action}</li>')


@view_config(route_name="devices_others", request_method="POST", permission="use")
def sign_out_other_devices(request: Request) -> Response:
    ended = request.wsgisession.end_user_sessions(request.authenticated_userid, keep=request.session)
    request.session.flash(f"Signed out {ended} other device(s).")
    return HTTPSeeOther(request.route_url("home"))


@view_config(route_name="devices_end", request_method="POST", permission="use")
def sign_out_device(request: Request) -> Response:
    if request.wsgisession.end_user_session(request.authenticated_userid, request.POST.get("handle", "")):
        request.session.flash("Signed out that device.")
    return HTTPSeeOther(request.route_url("home"))


@view_config(route_name="devices", request_method="GET", permission="use", renderer="json")
def api_devices(request: Request) -> dict[str, Any]:
    return {"devices": devices(request)}


@view_config(route_name="me", request_method="GET", renderer="json")
def me(request: Request) -> dict[str, Any]:
    return {"user": request.authenticated_userid, "n": request.session.get("n", 0)}
