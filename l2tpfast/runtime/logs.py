"""Log output of the daemon: one line per record, as text or as JSON lines.

:func:`configure_logging` installs one handler on the root logger. Both formats put the time first,
in ISO 8601 UTC with milliseconds (``2026-11-25T19:00:00.123Z``), so lines from several hosts sort
and merge. A record names its tunnel, session and peer through one ``extra`` key built by
:func:`ctx`::

    log.info("session closed", extra=ctx(tunnel_id=5, session_id=7, peer=("192.0.2.1", 1701)))

The text format shows those fields before the message, in a fixed order
(``... INFO l2tpfast tunnel=5 session=7 peer=192.0.2.1:1701 session closed``); the JSON format
gives each its own key. Secrets are never passed to a logger, so nothing here filters them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal, TextIO

__all__ = ["LEVELS", "JsonFormatter", "TextFormatter", "configure_logging", "ctx"]

#: The level names accepted by :func:`configure_logging` (case does not matter).
LEVELS = ("debug", "info", "warning", "error", "critical")
#: The formats accepted by :func:`configure_logging`.
FORMATS = ("text", "json")

# The one LogRecord attribute ctx() sets; a single key cannot collide with LogRecord's own
# attributes (logging raises KeyError on "message", "asctime" or any existing attribute).
_EXTRA_KEY = "l2tp"
# Context fields in output order, with the short names the text format uses.
_FIELDS = (
    ("tunnel_id", "tunnel"),
    ("session_id", "session"),
    ("peer_tunnel_id", "peer_tunnel"),
    ("peer_session_id", "peer_session"),
    ("peer", "peer"),
    ("username", "user"),
)


def ctx(
    tunnel_id: int | None = None,
    session_id: int | None = None,
    peer: str | tuple[str, int] | None = None,
    peer_tunnel_id: int | None = None,
    peer_session_id: int | None = None,
    username: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``extra=`` of a log call about one tunnel or session; fields left None are omitted."""
    if isinstance(peer, tuple):
        host, port = peer
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    given = {
        "tunnel_id": tunnel_id,
        "session_id": session_id,
        "peer_tunnel_id": peer_tunnel_id,
        "peer_session_id": peer_session_id,
        "peer": peer,
        "username": username,
    }
    return {_EXTRA_KEY: {k: v for k, v in given.items() if v is not None}}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    found = getattr(record, _EXTRA_KEY, None)
    return found if isinstance(found, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    # record.msecs is computed once from record.created, so the two never disagree on rounding.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the context fields present, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = _context(record)
        for name, _short in _FIELDS:
            if context.get(name) is not None:
                out[name] = context[name]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines inside strings: a traceback never breaks the one-line rule.
        return json.dumps(out, ensure_ascii=False, default=str)


def _text_value(value: Any) -> str:
    text = str(value)
    # A user name is the peer's choice: quote it when it could be mistaken for more fields.
    if not text or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger> [tunnel=.. session=.. ...] <message>``, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.name]
        context = _context(record)
        parts += [f"{short}={_text_value(context[name])}" for name, short in _FIELDS if name in context]
        parts.append(record.getMessage())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _Handler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs; its class marks it for replacement."""


def configure_logging(
    level: str, fmt: Literal["text", "json"] | str = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Log records of ``level`` and above to ``stream`` (default: sys.stderr) as ``fmt``.

    Calling it again replaces the handler it installed before, so a reload never doubles lines;
    other handlers on the root logger (pytest's, for one) are left alone.
    """
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use one of {', '.join(FORMATS)}")
    handler = _Handler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(name.upper())
    return handler
