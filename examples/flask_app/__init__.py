"""The Flask example: an idiomatic Flask-SocketIO + Flask-Login app on the shared session.

See :mod:`examples.flask_app.app` and README.rst beside this file. The app is
module-level, as Flask-SocketIO's documentation writes it, and configured as
Flask apps are (``app.config``, here from ``FLASK_*`` environment variables);
:func:`app_factory` serves it from an INI file (``conf/flask.ini``).
"""
from __future__ import annotations

from typing import Any


def app_factory(global_conf: dict[str, str], **local_conf: str) -> Any:
    """PasteDeploy ``[app:main]``: the module-level Flask app."""
    if local_conf:
        raise ValueError(f"[app:main] of the Flask example takes no settings (got {', '.join(sorted(local_conf))}): "
                         "it reads app.config, e.g. FLASK_WSGISESSION_TYPE=memory in the environment")
    from .app import app

    return app
