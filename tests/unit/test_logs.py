"""Log set-up (l2tpfast.runtime.logs): JSON lines, the text line, context fields, levels."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator

import pytest

from l2tpfast.runtime.logs import LEVELS, configure_logging, ctx

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A stream for configure_logging; the root logger is put back as it was afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    out = io.StringIO()
    yield out
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_line_has_the_fields(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    log = logging.getLogger("l2tpfast")
    log.info(
        "session %d up",
        7,
        extra=ctx(
            tunnel_id=5,
            session_id=7,
            peer=("192.0.2.1", 1701),
            peer_tunnel_id=50,
            peer_session_id=70,
            username="alice",
        ),
    )
    (line,) = _lines(stream)
    record = json.loads(line)
    assert record == {
        "ts": record["ts"],
        "level": "INFO",
        "logger": "l2tpfast",
        "msg": "session 7 up",
        "tunnel_id": 5,
        "session_id": 7,
        "peer_tunnel_id": 50,
        "peer_session_id": 70,
        "peer": "192.0.2.1:1701",
        "username": "alice",
    }
    assert re.fullmatch(TS, record["ts"])


def test_json_leaves_out_absent_context_and_keeps_one_line(stream: io.StringIO) -> None:
    configure_logging("debug", "json", stream)
    log = logging.getLogger("l2tpfast.dataplane")
    log.debug("no context\nsecond line")
    log.warning("tunnel only", extra=ctx(tunnel_id=3, peer=("2001:db8::1", 1701)))
    first, second = (json.loads(line) for line in _lines(stream))
    assert set(first) == {"ts", "level", "logger", "msg"}
    assert first["msg"] == "no context\nsecond line" and first["level"] == "DEBUG"
    assert second["tunnel_id"] == 3 and second["peer"] == "[2001:db8::1]:1701"
    assert "session_id" not in second and second["logger"] == "l2tpfast.dataplane"


def test_json_exception_is_text_in_one_line(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    try:
        raise ValueError("bad AVP")
    except ValueError:
        logging.getLogger("l2tpfast").exception("handler failed", extra=ctx(session_id=9))
    (line,) = _lines(stream)
    record = json.loads(line)
    assert record["level"] == "ERROR" and record["session_id"] == 9
    assert record["exc"].startswith("Traceback") and "ValueError: bad AVP" in record["exc"]


def test_text_line_shape(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    log = logging.getLogger("l2tpfast")
    # Given in another order than printed: the text format fixes the order.
    log.info(
        "session closed",
        extra=ctx(peer="192.0.2.1:1701", session_id=7, tunnel_id=5, username="bob smith"),
    )
    log.info("listening")
    first, second = _lines(stream)
    assert re.fullmatch(
        TS + r' INFO l2tpfast tunnel=5 session=7 peer=192\.0\.2\.1:1701 user="bob smith" session closed',
        first,
    ), first
    assert re.fullmatch(TS + " INFO l2tpfast listening", second), second


def test_text_timestamp_is_utc_with_milliseconds(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_logging("info", "text", stream)
    record = logging.LogRecord("l2tpfast", logging.INFO, __file__, 1, "at %s", ("night",), None)
    record.created, record.msecs = 1_795_636_800.123, 123.0
    handler = logging.getLogger().handlers[-1]
    monkeypatch.setenv("TZ", "America/New_York")  # the local time zone must not matter
    time.tzset()
    try:
        assert handler.format(record) == "2026-11-25T20:00:00.123Z INFO l2tpfast at night"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_text_exception_follows_the_line(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    try:
        raise KeyError("tunnel")
    except KeyError:
        logging.getLogger("l2tpfast").exception("lost", extra=ctx(tunnel_id=1))
    lines = _lines(stream)
    assert re.fullmatch(TS + " ERROR l2tpfast tunnel=1 lost", lines[0])
    assert lines[1] == "Traceback (most recent call last):" and lines[-1] == "KeyError: 'tunnel'"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_levels_are_honoured(stream: io.StringIO, fmt: str) -> None:
    configure_logging("WARNING", fmt, stream)
    log = logging.getLogger("l2tpfast.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert len(_lines(stream)) == 2
    assert "w" in _lines(stream)[0] and "e" in _lines(stream)[1]


def test_configuring_again_replaces_the_handler(stream: io.StringIO) -> None:
    configure_logging("info", "text", io.StringIO())
    configure_logging("info", "json", stream)
    logging.getLogger("l2tpfast").info("once")
    (line,) = _lines(stream)
    assert json.loads(line)["msg"] == "once"


def test_unknown_level_names_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown log level 'verbose': use one of debug, info, warning, error"
    ):
        configure_logging("verbose", "text")
    assert LEVELS == ("debug", "info", "warning", "error", "critical")


def test_unknown_format_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml': use one of text, json"):
        configure_logging("info", "xml")


def test_ctx_is_one_key_and_omits_none() -> None:
    assert ctx() == {"l2tp": {}}
    assert ctx(tunnel_id=0, session_id=None, peer=("198.51.100.7", 1701)) == {
        "l2tp": {"tunnel_id": 0, "peer": "198.51.100.7:1701"}
    }
    # One key that is not a LogRecord attribute: logging accepts it as extra.
    record = logging.getLogger("l2tpfast").makeRecord(
        "l2tpfast", logging.INFO, __file__, 1, "m", (), None, extra=ctx(tunnel_id=1)
    )
    assert record.l2tp == {"tunnel_id": 1}
