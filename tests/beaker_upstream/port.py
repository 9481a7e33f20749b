"""Beaker's ``SessionMiddleware(app, config=None, **options)``, built as ours: the one change of the port.

The modules of this package are Beaker's own middleware tests (bbangert/beaker,
``tests/``), ported with their assertions as upstream wrote them; only their
``from beaker.middleware import SessionMiddleware`` is this module's, which maps
Beaker's options to :func:`wsgisession.make_app`'s:

- ``secret``, ``validate_key``, ``encrypt_key``: Beaker takes any secret (or
  none); ours must be strong, so it is a hash of what was given (a different key
  still means a different secret, so an old cookie no longer verifies);
- ``type``: ``cookie`` (data in the cookie) becomes the memory store, the data
  staying on the server (no cookie-only sessions, by design); absent means
  ``file`` with a ``data_dir``, else ``memory``, as in Beaker; ``data_dir`` goes
  under this run's temporary directory;
- ``auto``: absent is Beaker's default, ``False`` (a Beaker app moved to us sets
  ``beaker.session.auto = false`` to keep it; ours defaults to on);
- cookie options (``key``, ``cookie_path``, ``cookie_domain``, ``cookie_expires``,
  ``secure``, ``httponly``, ``samesite``) and ``timeout`` are ours too; a string
  value goes through our INI parser, as ``beaker.session.<key>``;
- options with no meaning here (``data_serializer``: always JSON; ``invalidate_corrupt``,
  ``log_file``, ``save_accessed_time``) are dropped.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsgisession import make_app
from wsgisession.app import WsgiSessionApp
from wsgisession.config import BEAKER

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_ROOT = Path(tempfile.mkdtemp(prefix="beaker-upstream-"))  # removed by this package's conftest
_DROPPED = {"data_serializer", "invalidate_corrupt", "log_file", "save_accessed_time", "encrypt_nonce_bits",
            "crypto_type", "webtest_varname"}


def root() -> Path:
    return _ROOT


def beaker_options(config: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Beaker's option names and values, as its ``SessionMiddleware.__init__`` collects them."""
    options: dict[str, Any] = {}
    for source in (config or {}, kwargs):
        for key, value in source.items():
            if key.startswith("beaker.session."):
                options[key[len("beaker.session."):]] = value
            elif key.startswith("session."):
                options[key[len("session."):]] = value
    if not options and config:
        options = dict(config)
    options.update({k: v for k, v in kwargs.items() if "." not in k})
    return options


def SessionMiddleware(wrap_app: WSGIApplication, config: dict[str, Any] | None = None,  # noqa: N802  # Beaker's name
                      **kwargs: Any) -> WsgiSessionApp:
    options = beaker_options(config, kwargs)
    keys = "|".join(str(options.pop(name, "")) for name in ("secret", "validate_key", "encrypt_key"))
    settings: dict[str, Any] = {"secret": hashlib.sha256(keys.encode()).hexdigest(), "sweep_interval": None}
    kind = options.pop("type", None)
    data_dir = options.pop("data_dir", None)
    if kind in (None, "file") and data_dir:
        settings.update(type="file", data_dir=str(_ROOT / str(data_dir).strip("./")))
    else:
        settings["type"] = "memory"  # Beaker's memory, and its "cookie" (the data stays on the server)
    settings["autosave"] = False
    for name, value in options.items():
        if name in _DROPPED:
            continue
        if name not in BEAKER:
            raise TypeError(f"the port does not map Beaker's option {name!r}")
        argument, parse = BEAKER[name]
        settings[argument] = parse(value) if isinstance(value, str) else value
    return make_app(wrap_app, **settings)
