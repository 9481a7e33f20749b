"""The Pyramid example: an idiomatic Pyramid app whose ``request.session`` is the shared session.

Configured from its own INI section (``conf/pyramid.ini``: Pyramid's settings
and ``session.*`` as pyramid_beaker reads them), with a security policy over
the session (:mod:`examples.pyramid_app.security`), Pyramid's CSRF checks on
every POST, views and socket handlers found by ``config.scan()``.

HTTP:   GET /  the page (sign in, a live counter, your devices, sign out); POST /login,
        POST /logout, POST /incr, POST /devices/others ("sign out other devices") and
        POST /devices/end ("sign out that device") take the form's CSRF token;
        GET /api/me the user and the counter, GET /api/devices the user's sessions
Socket: ``whoami`` -> the user; ``incr`` -> the counter + 1, also sent as ``count``
        to every tab of the session
"""
from __future__ import annotations

from typing import Any

from pyramid.config import Configurator

from wsgisession.pyramid import make_wsgi_app

from .security import SecurityPolicy


def main(global_config: dict[str, str], **settings: str) -> Any:
    """PasteDeploy ``[app:main]``: Pyramid's usual ``main``, served through the session layer."""
    with Configurator(settings=settings) as config:
        config.include("wsgisession.pyramid")  # request.session is the shared session
        config.set_security_policy(SecurityPolicy())
        config.set_default_csrf_options(require_csrf=True)  # every POST checks csrf_token
        config.add_route("home", "/")
        config.add_route("client_js", "/socket.io.min.js")
        config.add_route("login", "/login")
        config.add_route("logout", "/logout")
        config.add_route("incr", "/incr")
        config.add_route("me", "/api/me")
        config.add_route("devices", "/api/devices")
        config.add_route("devices_others", "/devices/others")
        config.add_route("devices_end", "/devices/end")
        config.scan(".views")
        config.scan(".sockets")
        return make_wsgi_app(config)  # instead of config.make_wsgi_app()
