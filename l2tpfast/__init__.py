"""l2tpfast: L2TPv2 (RFC 2661) with a compiled batch data plane.

The compiled modules are required; there is no silent fallback to the pure-
Python reference (which lives in :mod:`l2tpfast.reference` as the test oracle
and benchmark baseline).
"""

from __future__ import annotations

import importlib

from l2tpfast._version import __version__
from l2tpfast.errors import (
    AvpError,
    ConfigError,
    HeaderError,
    HiddenAvpError,
    L2TPError,
    LocalProtocolError,
    MessageError,
    MissingExtensionError,
    ProtocolError,
    RemoteProtocolError,
)

#: The compiled fast-path modules, all required.
COMPILED_MODULES = ("_parse", "_dataplane")

_BUILD_HINT = (
    "the compiled l2tpfast modules are missing ({missing}); build them with "
    "`pip install .` (or `make compile` for an in-place build of a source checkout, "
    "`python setup.py build_ext --inplace`); they need a C compiler and Cython"
)


def _load_compiled() -> dict[str, object]:
    loaded: dict[str, object] = {}
    missing: list[str] = []
    for name in COMPILED_MODULES:
        try:
            loaded[name] = importlib.import_module(f"l2tpfast.{name}")
        except ImportError:
            missing.append(f"l2tpfast.{name}")
    if missing:
        raise MissingExtensionError(_BUILD_HINT.format(missing=", ".join(missing)))
    return loaded


_compiled = _load_compiled()


def compiled_modules() -> dict[str, str]:
    """Name and file of every loaded compiled module."""
    return {name: str(getattr(module, "__file__", "?")) for name, module in _compiled.items()}


__all__ = [
    "AvpError",
    "ConfigError",
    "HeaderError",
    "HiddenAvpError",
    "L2TPError",
    "LocalProtocolError",
    "MessageError",
    "MissingExtensionError",
    "ProtocolError",
    "RemoteProtocolError",
    "__version__",
    "compiled_modules",
]
