"""RADIUS for PPP sessions: authentication (RFC 2865), accounting (RFC 2866, RFC 2869), Message-
Authenticator (RFC 3579 3.2), Microsoft and DSL Forum attributes (RFC 2548, RFC 4679), the
Acct-Terminate-Cause of a session's end (RFC 2866 5.10) and Dynamic Authorization (RFC 5176).

Everything here is sans-IO: :mod:`~l2tpfast.aaa.radius.packet` builds and parses packets,
:class:`RadiusClient` keeps Identifiers, retransmission timers and failover, :class:`DaeServer`
verifies Disconnect/CoA requests. ``runtime/radius.py`` is the asyncio shell with the sockets.
pyrad is the packet codec (see :mod:`~l2tpfast.aaa.radius._pyrad`), with l2tpfast's own
dictionary file.
"""

from __future__ import annotations

from l2tpfast.aaa.radius.client import (
    AccessAnswered,
    AccountingAnswered,
    RadiusClient,
    RadiusEvent,
    RadiusServer,
    RadiusSettings,
    RequestFailed,
)
from l2tpfast.aaa.radius.constants import AcctTerminateCause, Code, ErrorCause
from l2tpfast.aaa.radius.dae import DaeRequest, DaeServer
from l2tpfast.aaa.radius.packet import (
    AccessReply,
    AccountingRecord,
    RadiusEncodeError,
    SessionInfo,
    build_access_request,
    build_accounting_request,
    parse_access_reply,
    parse_accounting_response,
    to_decision,
)
from l2tpfast.aaa.radius.terminate import LocalCause, PppEnding, acct_terminate_cause

__all__ = [
    "AccessAnswered",
    "AccessReply",
    "AccountingAnswered",
    "AccountingRecord",
    "AcctTerminateCause",
    "Code",
    "DaeRequest",
    "DaeServer",
    "ErrorCause",
    "LocalCause",
    "PppEnding",
    "RadiusClient",
    "RadiusEncodeError",
    "RadiusEvent",
    "RadiusServer",
    "RadiusSettings",
    "RequestFailed",
    "SessionInfo",
    "acct_terminate_cause",
    "build_access_request",
    "build_accounting_request",
    "parse_access_reply",
    "parse_accounting_response",
    "to_decision",
]
