"""PPP authentication, both ends, sans-IO: PAP (RFC 1334 2), CHAP-MD5 (RFC 1994), MS-CHAPv2 (RFC 2759).

``base`` holds the shapes the link drives (:class:`Authenticator`, :class:`Peer`), the requests a
backend judges and the factories; ``pap``, ``chap`` and ``mschapv2`` hold one protocol each.
"""

from __future__ import annotations

from l2tpfast.ppp.auth.base import (
    AuthBackend,
    AuthDecision,
    Authenticator,
    AuthOutcome,
    AuthRequest,
    AuthSettings,
    ChapRequest,
    MsChapV2Request,
    PapRequest,
    Peer,
    make_authenticator,
    make_peer,
    method_of,
    request_from_proxy,
)

__all__ = [
    "AuthBackend",
    "AuthDecision",
    "AuthOutcome",
    "AuthRequest",
    "AuthSettings",
    "Authenticator",
    "ChapRequest",
    "MsChapV2Request",
    "PapRequest",
    "Peer",
    "make_authenticator",
    "make_peer",
    "method_of",
    "request_from_proxy",
]
