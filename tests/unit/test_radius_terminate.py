"""Acct-Terminate-Cause (RFC 2866 5.10) for every row of l2tpfast.aaa.radius.terminate's tables."""

from __future__ import annotations

import pytest

from l2tpfast.aaa.radius.constants import AcctTerminateCause as C
from l2tpfast.aaa.radius.terminate import (
    CDN_RESULTS,
    DISCONNECT_CODES,
    LOCAL_CAUSES,
    PPP_ENDINGS,
    LocalCause,
    PppEnding,
    acct_terminate_cause,
)
from l2tpfast.wire.avp import PppDisconnectCause
from l2tpfast.wire.constants import CDNResult, StopCCNResult

LCP = 0xC021


def _cause(code: int, direction: int = 0, protocol: int = 0) -> PppDisconnectCause:
    return PppDisconnectCause(code, protocol, direction)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (LocalCause.SESSION_TIMEOUT, C.SESSION_TIMEOUT),
        (LocalCause.IDLE_TIMEOUT, C.IDLE_TIMEOUT),
        (LocalCause.ADMIN_RESET, C.ADMIN_RESET),
        (LocalCause.ADMIN_REBOOT, C.ADMIN_REBOOT),
        (LocalCause.NAS_REBOOT, C.NAS_REBOOT),
        (LocalCause.NAS_ERROR, C.NAS_ERROR),
        (LocalCause.NAS_REQUEST, C.NAS_REQUEST),
        (LocalCause.SERVICE_UNAVAILABLE, C.SERVICE_UNAVAILABLE),
    ],
)
def test_local_causes(local: LocalCause, expected: C) -> None:
    assert acct_terminate_cause(local=local) == expected


def test_every_local_cause_has_a_row() -> None:
    assert set(LOCAL_CAUSES) == set(LocalCause)
    assert set(PPP_ENDINGS) == set(PppEnding)


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (PppEnding.PEER_TERMINATE, C.USER_REQUEST),
        (PppEnding.KEEPALIVE_LOST, C.LOST_CARRIER),
        (PppEnding.LOOPBACK, C.PORT_ERROR),
        (PppEnding.NEGOTIATION_FAILED, C.SERVICE_UNAVAILABLE),
        (PppEnding.AUTH_FAILED, C.USER_ERROR),
        (PppEnding.NO_NETWORK_PROTOCOL, C.SERVICE_UNAVAILABLE),
    ],
)
def test_ppp_endings(ending: PppEnding, expected: C) -> None:
    assert acct_terminate_cause(ppp=ending) == expected
    # The PPP ending wins over what the CDN that followed it says.
    assert acct_terminate_cause(ppp=ending, cdn_result=CDNResult.GENERAL_ERROR, cdn_by_peer=True) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, C.ADMIN_RESET),
        (2, C.SERVICE_UNAVAILABLE),
        (4, C.SERVICE_UNAVAILABLE),
        (5, C.SERVICE_UNAVAILABLE),
        (6, C.SERVICE_UNAVAILABLE),
        (7, C.PORT_ERROR),
        (8, C.LOST_CARRIER),
        (9, C.SERVICE_UNAVAILABLE),
        (10, C.SERVICE_UNAVAILABLE),
        (11, C.SERVICE_UNAVAILABLE),
        (12, C.SERVICE_UNAVAILABLE),
        (13, C.SERVICE_UNAVAILABLE),
        (14, C.SERVICE_UNAVAILABLE),
        (15, C.SERVICE_UNAVAILABLE),
        (16, C.USER_ERROR),
        (17, C.SERVICE_UNAVAILABLE),
        (18, C.SERVICE_UNAVAILABLE),
        (19, C.SERVICE_UNAVAILABLE),
        (20, C.SERVICE_UNAVAILABLE),
    ],
)
def test_rfc3145_disconnect_codes(code: int, expected: C) -> None:
    assert DISCONNECT_CODES[code] == expected
    cause = _cause(code, direction=2, protocol=LCP)
    # The RFC 3145 AVP is more specific than the CDN's Result Code.
    assert acct_terminate_cause(
        disconnect_cause=cause, cdn_result=CDNResult.ADMINISTRATIVE, cdn_by_peer=True
    ) == (expected)


def test_rfc3145_table_is_complete() -> None:
    assert set(DISCONNECT_CODES) == set(range(1, 21)) - {3}


@pytest.mark.parametrize(
    ("direction", "lns", "expected"),
    [
        (1, True, C.USER_REQUEST),  # the user ended PPP (at the peer of the LAC)
        (1, False, C.USER_REQUEST),  # the user ended PPP (at the peer of the LNS)
        (2, True, C.NAS_REQUEST),  # the LAC, sender of the CDN, ended it
        (2, False, C.HOST_REQUEST),  # the LNS, sender of the CDN, ended it
    ],
)
def test_rfc3145_normal_disconnection_by_direction(direction: int, lns: bool, expected: C) -> None:
    assert acct_terminate_cause(
        disconnect_cause=_cause(3, direction), lns=lns, cdn_result=1, cdn_by_peer=True
    ) == (expected)


def test_rfc3145_without_information_falls_back_to_the_result_code() -> None:
    for cause in (_cause(0), _cause(3, direction=0), _cause(99)):
        assert acct_terminate_cause(disconnect_cause=cause, cdn_result=1, cdn_by_peer=True) == C.LOST_CARRIER


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (CDNResult.LOSS_OF_CARRIER, C.LOST_CARRIER),
        (CDNResult.GENERAL_ERROR, C.LOST_SERVICE),
        (CDNResult.ADMINISTRATIVE, C.ADMIN_RESET),
        (CDNResult.TEMPORARY_NO_FACILITIES, C.SERVICE_UNAVAILABLE),
        (CDNResult.PERMANENT_NO_FACILITIES, C.SERVICE_UNAVAILABLE),
        (CDNResult.INVALID_DESTINATION, C.SERVICE_UNAVAILABLE),
        (CDNResult.NO_CARRIER, C.LOST_CARRIER),
        (CDNResult.BUSY, C.SERVICE_UNAVAILABLE),
        (CDNResult.NO_DIAL_TONE, C.SERVICE_UNAVAILABLE),
        (CDNResult.TIMEOUT, C.SERVICE_UNAVAILABLE),
        (CDNResult.NO_FRAMING, C.SERVICE_UNAVAILABLE),
        (0, C.LOST_SERVICE),
        (42, C.LOST_SERVICE),
    ],
)
def test_cdn_from_the_peer(result: int, expected: C) -> None:
    assert CDN_RESULTS.get(result, C.LOST_SERVICE) == expected
    assert acct_terminate_cause(cdn_result=result, cdn_by_peer=True) == expected


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (CDNResult.ADMINISTRATIVE, C.ADMIN_RESET),
        (CDNResult.GENERAL_ERROR, C.NAS_ERROR),
        (CDNResult.LOSS_OF_CARRIER, C.NAS_ERROR),
    ],
)
def test_our_own_cdn(result: int, expected: C) -> None:
    assert acct_terminate_cause(cdn_result=result, cdn_by_peer=False) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tunnel_lost": True, "lns": True}, C.LOST_CARRIER),
        ({"tunnel_lost": True, "lns": False}, C.LOST_SERVICE),
        (
            {"stopccn_result": StopCCNResult.GENERAL_REQUEST, "stopccn_by_peer": True, "lns": True},
            C.LOST_CARRIER,
        ),
        (
            {"stopccn_result": StopCCNResult.SHUTTING_DOWN, "stopccn_by_peer": True, "lns": False},
            C.LOST_SERVICE,
        ),
        ({"stopccn_result": StopCCNResult.SHUTTING_DOWN}, C.ADMIN_REBOOT),
        ({"stopccn_result": StopCCNResult.GENERAL_REQUEST}, C.ADMIN_RESET),
        ({"stopccn_result": StopCCNResult.GENERAL_ERROR}, C.NAS_ERROR),
        ({"stopccn_result": StopCCNResult.FSM_ERROR}, C.NAS_ERROR),
    ],
)
def test_tunnel_endings(kwargs: dict[str, object], expected: C) -> None:
    assert acct_terminate_cause(**kwargs) == expected  # type: ignore[arg-type]


def test_precedence() -> None:
    everything = {
        "ppp": PppEnding.KEEPALIVE_LOST,
        "disconnect_cause": _cause(1),
        "cdn_result": CDNResult.BUSY,
        "cdn_by_peer": True,
        "stopccn_result": StopCCNResult.SHUTTING_DOWN,
        "tunnel_lost": True,
    }
    # Our own decision first, then PPP, then RFC 3145, then the CDN, then the tunnel.
    assert acct_terminate_cause(local=LocalCause.IDLE_TIMEOUT, **everything) == C.IDLE_TIMEOUT  # type: ignore[arg-type]
    assert acct_terminate_cause(**everything) == C.LOST_CARRIER  # type: ignore[arg-type]
    assert acct_terminate_cause(disconnect_cause=_cause(1), cdn_result=7, tunnel_lost=True) == C.ADMIN_RESET
    assert (
        acct_terminate_cause(cdn_result=CDNResult.BUSY, cdn_by_peer=True, tunnel_lost=True)
        == C.SERVICE_UNAVAILABLE
    )


def test_nothing_known_is_a_nas_error() -> None:
    assert acct_terminate_cause() == C.NAS_ERROR
