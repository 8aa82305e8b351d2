"""The one exception hierarchy of l2tpfast (STYLE.md section 7).

Remote faults carry the RFC 2661 4.4.2 Result Code and Error Code with which
the receiver answers (StopCCN for a tunnel message, CDN for a session message),
so the control plane never has to guess.
"""

from __future__ import annotations

import enum


class L2TPError(Exception):
    """Base of every error l2tpfast raises."""


class Scope(enum.Enum):
    """What an error in a received message takes down (RFC 2661 4.1)."""

    #: Drop the datagram silently (RFC 2661 3.1: malformed header, unknown Ver).
    DATAGRAM = "datagram"
    #: Ignore this message but acknowledge it (unknown message type, M=0).
    MESSAGE = "message"
    #: CDN for the session the message belongs to.
    SESSION = "session"
    #: StopCCN for the whole tunnel.
    TUNNEL = "tunnel"


class ProtocolError(L2TPError):
    """A violation of RFC 2661, by us or by the peer."""


class LocalProtocolError(ProtocolError):
    """API misuse: we were asked to build or do something the RFC forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the RFC forbids; carries the answer to give.

    ``result_code`` and ``error_code`` are the values of the Result Code AVP
    to send back (StopCCN when ``scope`` is TUNNEL, CDN when SESSION);
    ``message`` becomes its Error Message.
    """

    def __init__(
        self,
        message: str,
        *,
        scope: Scope = Scope.TUNNEL,
        result_code: int = 2,
        error_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.scope = scope
        self.result_code = result_code
        self.error_code = error_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, scope={self.scope.name}, "
            f"result_code={self.result_code}, error_code={self.error_code})"
        )


class HeaderError(RemoteProtocolError):
    """A malformed L2TP header (RFC 2661 3.1): the datagram is dropped silently.

    ``status`` is the :class:`~l2tpfast.wire.constants.ParseStatus` the batch
    parser reports for the same datagram.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, scope=Scope.DATAGRAM, result_code=0)
        self.status = status


class AvpError(RemoteProtocolError):
    """A malformed, out-of-range or unrecognised mandatory AVP (RFC 2661 4.1, 4.4)."""

    def __init__(
        self,
        message: str,
        *,
        attr_type: int,
        vendor_id: int = 0,
        error_code: int,
        scope: Scope = Scope.TUNNEL,
        result_code: int = 2,
    ) -> None:
        super().__init__(message, scope=scope, result_code=result_code, error_code=error_code)
        self.attr_type = attr_type
        self.vendor_id = vendor_id


class HiddenAvpError(AvpError):
    """A hidden AVP (RFC 2661 4.3) that cannot be recovered: no secret, no
    Random Vector before it, or a wrong secret."""


class MessageError(RemoteProtocolError):
    """A control message that breaks the rules of RFC 2661 section 6."""


class ConfigError(L2TPError):
    """A configuration error; names the key path, the value and how to fix it."""

    def __init__(self, key: str, message: str, hint: str = "") -> None:
        text = f"{key}: {message}" + (f" ({hint})" if hint else "")
        super().__init__(text)
        self.key = key
        self.hint = hint


class ConfigErrors(ConfigError):
    """Several configuration errors found in one pass: one per section at most, each named."""

    def __init__(self, errors: list[ConfigError]) -> None:
        L2TPError.__init__(self, "\n".join(str(e) for e in errors))
        self.errors = errors
        self.key = errors[0].key
        self.hint = errors[0].hint


class MissingExtensionError(ImportError, L2TPError):
    """The compiled fast-path modules are not built."""


class PppError(L2TPError):
    """A PPP frame or packet that cannot be parsed (RFC 1661 5, RFC 1662 3); the frame is dropped."""
