"""Acct-Terminate-Cause (RFC 2866 5.10) from what ended a session: our own decision, the PPP link,
the peer's CDN (RFC 2661 4.4.2 Result Code, RFC 3145 PPP Disconnect Cause Code) or the tunnel.

Theory of operation. One session can end for several reasons at once (the peer's LCP
Terminate-Request is followed by our CDN, a tunnel failure closes every session in it). The
function takes everything the caller knows and applies them in this order, most specific first;
the first that gives a cause wins:

1. :class:`LocalCause`: we decided, so we know exactly why (timers, DAE, the operator, shutdown).
2. :class:`PppEnding`: what our PPP engine saw on the link itself.
3. The RFC 3145 PPP Disconnect Cause Code in the peer's CDN (code 0 says nothing: skipped).
4. The CDN Result Code (RFC 2661 4.4.2), with who sent the CDN.
5. The tunnel: the peer's StopCCN or the control channel giving up, or our own StopCCN.
6. Nothing known: NAS-Error.

Choices where RFC 2866 5.10 leaves room, and why:

- Lost keepalive (no LCP Echo-Reply, RFC 1661 5.8) is Lost-Carrier (2): "DCD was dropped on the
  port" is the dial-up form of "the link stopped answering", and it is what pppd's RADIUS plugin
  reports for the same event (EXIT_PEER_DEAD). Lost-Service (3) is kept for the case of RFC 2866's
  own example, "user's connection to a host was interrupted": the tunnel to the LNS, seen from a
  LAC.
- A tunnel that the LAC tears down (StopCCN) or that stops answering is, at an LNS, every
  subscriber losing its line: Lost-Carrier (2). At a LAC, the LNS going away is Lost-Service (3).
- The peer's LCP Terminate-Request is User-Request (1), RFC 2866's own example ("for example with
  LCP Terminate"). RFC 3145 code 3 (normal disconnection) with direction 1 (the PPP peer, i.e. the
  user, ended it) is User-Request too; with direction 2 the sender of the CDN ended it, which is
  Host-Request (18, "Login Host terminated session normally") when the sender is the LNS, and
  NAS-Request (10) when it is the LAC (a NAS ending it for a non-error reason).
- An orderly shutdown of l2tpfast is Admin-Reboot (7), "Administrator is ending service on the
  NAS". NAS-Reboot (11) is "non-administratively ('crash')": for Stop records sent after a restart
  for sessions a crash ended.
- A DAE Disconnect-Request (RFC 5176) and an operator's close are Admin-Reset (6); so is CDN
  Result Code 3 ("disconnected for administrative reasons") and RFC 3145 code 1.
- Failed authentication is User-Error (17, "input from user is in error"); pppd says
  Service-Unavailable for it. Negotiation that does not converge (LCP or NCP), a refused
  protocol and the CDN results of a call that never came up (4-6, 8-11) are Service-Unavailable
  (15, "NAS was unable to provide requested service"). A looped-back link (RFC 1661 magic number)
  is Port-Error (8).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from l2tpfast.aaa.radius.constants import AcctTerminateCause as C
from l2tpfast.wire.avp import PppDisconnectCause
from l2tpfast.wire.constants import CDNResult, StopCCNResult


class LocalCause(enum.Enum):
    """Why we ended the session ourselves."""

    #: RFC 2865 5.27 Session-Timeout expired.
    SESSION_TIMEOUT = "session-timeout"
    #: RFC 2865 5.28 Idle-Timeout expired.
    IDLE_TIMEOUT = "idle-timeout"
    #: RFC 5176 Disconnect-Request, or the operator closed the session or its tunnel.
    ADMIN_RESET = "admin-reset"
    #: Orderly shutdown of the daemon.
    ADMIN_REBOOT = "admin-reboot"
    #: Stop sent after a restart for a session a crash ended.
    NAS_REBOOT = "nas-reboot"
    #: An internal error (data plane, resources) forced the end.
    NAS_ERROR = "nas-error"
    #: Ended for a non-error reason not listed here.
    NAS_REQUEST = "nas-request"
    #: We could not provide the service (no address left, for example).
    SERVICE_UNAVAILABLE = "service-unavailable"


class PppEnding(enum.Enum):
    """How the PPP link ended, as our PPP engine saw it."""

    #: The peer sent LCP Terminate-Request (RFC 1661 5.5).
    PEER_TERMINATE = "peer-terminate"
    #: LCP Echo-Requests went unanswered (RFC 1661 5.8).
    KEEPALIVE_LOST = "keepalive-lost"
    #: Our own magic number came back (RFC 1661 6.4): a looped-back link.
    LOOPBACK = "loopback"
    #: LCP or an NCP did not converge (RFC 1661 4.6 Max-Configure, Max-Failure).
    NEGOTIATION_FAILED = "negotiation-failed"
    #: The peer failed authentication (RFC 1334 2, RFC 1994 4, RFC 2759).
    AUTH_FAILED = "auth-failed"
    #: No network protocol came up (RFC 1661 3.7 closes the link).
    NO_NETWORK_PROTOCOL = "no-network-protocol"


LOCAL_CAUSES: Mapping[LocalCause, C] = {
    LocalCause.SESSION_TIMEOUT: C.SESSION_TIMEOUT,
    LocalCause.IDLE_TIMEOUT: C.IDLE_TIMEOUT,
    LocalCause.ADMIN_RESET: C.ADMIN_RESET,
    LocalCause.ADMIN_REBOOT: C.ADMIN_REBOOT,
    LocalCause.NAS_REBOOT: C.NAS_REBOOT,
    LocalCause.NAS_ERROR: C.NAS_ERROR,
    LocalCause.NAS_REQUEST: C.NAS_REQUEST,
    LocalCause.SERVICE_UNAVAILABLE: C.SERVICE_UNAVAILABLE,
}

PPP_ENDINGS: Mapping[PppEnding, C] = {
    PppEnding.PEER_TERMINATE: C.USER_REQUEST,
    PppEnding.KEEPALIVE_LOST: C.LOST_CARRIER,
    PppEnding.LOOPBACK: C.PORT_ERROR,
    PppEnding.NEGOTIATION_FAILED: C.SERVICE_UNAVAILABLE,
    PppEnding.AUTH_FAILED: C.USER_ERROR,
    PppEnding.NO_NETWORK_PROTOCOL: C.SERVICE_UNAVAILABLE,
}

#: RFC 3145 2 Direction: 0 a global error, 1 "at peer" (the PPP peer of the L2TP host that sends
#: the CDN, i.e. the user), 2 "at local" (that host itself).
DIRECTION_PEER = 1
DIRECTION_LOCAL = 2

#: RFC 3145 3.1-3.4 Disconnect Code -> cause; 3 (normal) depends on the direction, 0 says nothing.
DISCONNECT_CODES: Mapping[int, C] = {
    1: C.ADMIN_RESET,  # administrative disconnect
    2: C.SERVICE_UNAVAILABLE,  # LCP renegotiation at LNS disabled, LAC had no proxy LCP
    4: C.SERVICE_UNAVAILABLE,  # compulsory encryption refused
    5: C.SERVICE_UNAVAILABLE,  # LCP FSM timeout (TO-)
    6: C.SERVICE_UNAVAILABLE,  # no recognizable LCP packets
    7: C.PORT_ERROR,  # magic number error: link looped back
    8: C.LOST_CARRIER,  # LCP Echo-Request timeout
    9: C.SERVICE_UNAVAILABLE,  # unexpected Endpoint-Discriminator for an MP bundle
    10: C.SERVICE_UNAVAILABLE,  # unexpected MRRU for an MP bundle
    11: C.SERVICE_UNAVAILABLE,  # unexpected Short-Sequence-Number option
    12: C.SERVICE_UNAVAILABLE,  # compulsory callback refused
    13: C.SERVICE_UNAVAILABLE,  # authentication FSM timeout
    14: C.SERVICE_UNAVAILABLE,  # unexpected authenticated name for an MP bundle
    15: C.SERVICE_UNAVAILABLE,  # authentication protocol unacceptable
    16: C.USER_ERROR,  # authentication failed (bad name, password or secret)
    17: C.SERVICE_UNAVAILABLE,  # NCP FSM timeout
    18: C.SERVICE_UNAVAILABLE,  # no NCPs available
    19: C.SERVICE_UNAVAILABLE,  # NCP failed to converge on acceptable addresses
    20: C.SERVICE_UNAVAILABLE,  # user not permitted to use any address
}

#: RFC 2661 4.4.2 CDN Result Code -> cause.
CDN_RESULTS: Mapping[int, C] = {
    CDNResult.LOSS_OF_CARRIER: C.LOST_CARRIER,
    CDNResult.GENERAL_ERROR: C.LOST_SERVICE,  # set below for our own CDN
    CDNResult.ADMINISTRATIVE: C.ADMIN_RESET,
    CDNResult.TEMPORARY_NO_FACILITIES: C.SERVICE_UNAVAILABLE,
    CDNResult.PERMANENT_NO_FACILITIES: C.SERVICE_UNAVAILABLE,
    CDNResult.INVALID_DESTINATION: C.SERVICE_UNAVAILABLE,
    CDNResult.NO_CARRIER: C.LOST_CARRIER,
    CDNResult.BUSY: C.SERVICE_UNAVAILABLE,
    CDNResult.NO_DIAL_TONE: C.SERVICE_UNAVAILABLE,
    CDNResult.TIMEOUT: C.SERVICE_UNAVAILABLE,
    CDNResult.NO_FRAMING: C.SERVICE_UNAVAILABLE,
}


def _from_disconnect_cause(cause: PppDisconnectCause, lns: bool) -> C | None:
    if cause.disconnect_code == 3:  # RFC 3145 3.1: "Normal Disconnection, LCP Terminate-Request sent"
        if cause.direction == DIRECTION_PEER:
            return C.USER_REQUEST
        if cause.direction == DIRECTION_LOCAL:
            # The CDN's sender ended it: the LNS (we are the LAC) or the LAC (we are the LNS).
            return C.NAS_REQUEST if lns else C.HOST_REQUEST
        return None
    return DISCONNECT_CODES.get(cause.disconnect_code)


def _from_cdn(result: int, by_peer: bool) -> C:
    if not by_peer:
        # Our own CDN without a LocalCause: an administrative close, else an error we detected.
        return C.ADMIN_RESET if result == CDNResult.ADMINISTRATIVE else C.NAS_ERROR
    return CDN_RESULTS.get(result, C.LOST_SERVICE)


def _from_tunnel(stopccn_result: int | None, by_peer: bool, lost: bool, lns: bool) -> C | None:
    if lost or (stopccn_result is not None and by_peer):
        # The far end of the tunnel is gone: at an LNS the subscriber's line, at a LAC the host.
        return C.LOST_CARRIER if lns else C.LOST_SERVICE
    if stopccn_result is None:
        return None
    if stopccn_result == StopCCNResult.SHUTTING_DOWN:
        return C.ADMIN_REBOOT
    if stopccn_result == StopCCNResult.GENERAL_REQUEST:
        return C.ADMIN_RESET
    return C.NAS_ERROR


def acct_terminate_cause(
    *,
    local: LocalCause | None = None,
    ppp: PppEnding | None = None,
    disconnect_cause: PppDisconnectCause | None = None,
    cdn_result: int | None = None,
    cdn_by_peer: bool = False,
    stopccn_result: int | None = None,
    stopccn_by_peer: bool = False,
    tunnel_lost: bool = False,
    lns: bool = True,
) -> int:
    """The RFC 2866 5.10 Acct-Terminate-Cause for a session that ended (see the module docstring).

    ``disconnect_cause`` is the RFC 3145 AVP of a CDN the peer sent; ``cdn_result`` the Result
    Code of the CDN that ended the session (sent by the peer when ``cdn_by_peer``);
    ``stopccn_result`` that of the StopCCN that ended its tunnel; ``tunnel_lost`` that the
    control channel gave up on an unresponsive peer (RFC 2661 5.8); ``lns`` whether we are the
    LNS of the session (else the LAC).
    """
    if local is not None:
        return LOCAL_CAUSES[local]
    if ppp is not None:
        return PPP_ENDINGS[ppp]
    if disconnect_cause is not None:
        cause = _from_disconnect_cause(disconnect_cause, lns)
        if cause is not None:
            return cause
    if cdn_result is not None:
        return _from_cdn(cdn_result, cdn_by_peer)
    tunnel = _from_tunnel(stopccn_result, stopccn_by_peer, tunnel_lost, lns)
    if tunnel is not None:
        return tunnel
    return C.NAS_ERROR
