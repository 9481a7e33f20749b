"""The ``wsgisession serve`` command: a development server for an INI file.

    wsgisession serve conf/development.ini --host 127.0.0.1 --port 6543

It puts the current directory on ``sys.path`` (as gunicorn does), monkey-patches
the standard library with gevent (and turns off its record of where each
greenlet was spawned: :func:`wsgisession.server.untrack_spawns`), configures logging from
the INI's ``[loggers]`` sections (if any), loads the app with PasteDeploy (then
freezes the loaded heap: :func:`wsgisession.server.freeze_loaded_heap`) and
serves it with gevent's pywsgi and the WebSocket handler (TCP_NODELAY on, so
keep-alive responses are not held back by Nagle's algorithm). SIGTERM and
SIGINT stop it gracefully: in-flight requests and saves get time to finish.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

log = logging.getLogger("wsgisession.serve")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsgisession", description="wsgisession tools")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve an INI file's app with gevent")
    serve.add_argument("config", help="a PasteDeploy INI file")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=6543, help="port to bind; 0 picks a free one (default 6543)")
    serve.add_argument("--name", default="main", help="the app's section name (default main)")
    serve.add_argument("--stop-timeout", type=float, default=10.0, help="seconds to let requests finish on stop")
    return parser


def setup_logging(config: str) -> None:
    """Logging from the INI's [loggers] sections, or INFO to stderr."""
    import configparser
    import logging.config

    parser = configparser.ConfigParser()
    parser.read(config)
    if parser.has_section("loggers"):
        logging.config.fileConfig(config, {"here": os.path.dirname(config), "__file__": config},
                                  disable_existing_loggers=False)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = os.path.abspath(args.config)
    if not os.path.isfile(config):
        sys.stderr.write(f"wsgisession: no such INI file: {args.config}\n")
        return 2
    if os.getcwd() not in sys.path:  # as gunicorn does: the INI's call:module:factory may name the project's modules
        sys.path.insert(0, os.getcwd())

    from gevent import monkey

    monkey.patch_all()
    import configparser

    from .server import untrack_spawns

    untrack_spawns()  # faster spawns (a greenlet per socket event); GEVENT_TRACK_GREENLET_TREE=1 keeps the records

    try:
        setup_logging(config)
    except (configparser.Error, KeyError, ValueError) as exc:
        sys.stderr.write(f"wsgisession: cannot load {args.config}: {exc}\n")
        return 2

    import gevent
    import gevent.signal
    from paste.deploy import loadapp

    from .errors import WsgiSessionError
    from .realtime import drain_all, start_all
    from .server import close_idle_connections, freeze_loaded_heap, make_server

    try:
        app = loadapp("config:" + config, name=args.name)
    except (WsgiSessionError, LookupError, ValueError, ImportError, configparser.Error) as exc:
        log.error("cannot load %s: %s", args.config, exc)
        sys.stderr.write(f"wsgisession: cannot load {args.config}: {exc}\n")
        return 2
    freeze_loaded_heap()
    start_all()  # the message queue listener, before the first socket (else a logout may pass it by)
    try:
        server = make_server((args.host, args.port), app)
        server.start()
    except OSError as exc:
        sys.stderr.write(f"wsgisession: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
        return 2
    host, port = server.address[0], server.address[1]
    log.info("serving %s on http://%s:%s/", args.config, host, port)

    def stop(*_: object) -> None:
        log.info("stopping: letting in-flight requests and events finish (up to %ss)", args.stop_timeout)
        server.close()  # no new connections; keep-alive ones close after their current response
        close_idle_connections()
        drain_all(args.stop_timeout / 2)
        close_idle_connections()
        server.stop(timeout=args.stop_timeout / 2)

    gevent.signal.signal(15, lambda *_: gevent.spawn(stop))
    gevent.signal.signal(2, lambda *_: gevent.spawn(stop))
    server.serve_forever()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
