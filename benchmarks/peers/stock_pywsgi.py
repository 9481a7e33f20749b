"""Our counter example (an INI file) on stock gevent pywsgi: gevent-websocket's
handler with Nagle left on, as ``WSGIServer(..., handler_class=WebSocketHandler)``
comes. Only for the keep-alive latency comparison.

    python stock_pywsgi.py --port P --ini app.ini
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

from paste.deploy import loadapp  # noqa: E402

from _common import parser, serve  # noqa: E402


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--ini", required=True)
    options = args.parse_args()
    app = loadapp("config:" + os.path.abspath(options.ini))
    serve(app, options.port, nodelay=not options.nagle)


if __name__ == "__main__":
    main()
