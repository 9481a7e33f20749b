"""The public API: one list of names (``wsgisession._EXPORTS``), each importable from the package."""
from __future__ import annotations

import ast
from pathlib import Path

import wsgisession

INIT = Path(wsgisession.__file__)


def type_checking_imports() -> dict[str, str]:
    """The names the ``if TYPE_CHECKING:`` block of __init__.py imports, and their modules."""
    tree = ast.parse(INIT.read_text())
    (block,) = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    names: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        names.update({alias.name: node.module for alias in node.names})
    return names


def test_all_the_lazy_exports_and_the_type_checking_imports_agree() -> None:
    assert wsgisession.__all__ == [*wsgisession._EXPORTS, "__version__"]
    assert type_checking_imports() == dict(wsgisession._EXPORTS)


def test_every_public_name_is_importable_from_its_module() -> None:
    for name, module in wsgisession._EXPORTS.items():
        value = getattr(wsgisession, name)
        assert value.__module__ == f"wsgisession.{module}", name


def test_what_building_the_parts_by_hand_needs_is_public() -> None:
    for name in ("Store", "SessionCookie", "Fingerprint", "SessionManager", "SessionMiddleware", "SessionSockets",
                 "OriginPolicy", "CookieExchange", "SharedSession", "make_app"):
        assert name in wsgisession.__all__
