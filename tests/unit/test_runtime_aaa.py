"""The LNS's RADIUS glue (runtime/aaa.py): which session a DAE request names, the cause a Stop
gives, and how the server's Acct-Interim-Interval, Session-Timeout and Idle-Timeout are taken."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from l2tpfast.aaa.radius.constants import AcctTerminateCause as C
from l2tpfast.aaa.radius.dae import DaeRequest
from l2tpfast.aaa.radius.packet import AccessReply, SessionInfo
from l2tpfast.aaa.radius.terminate import LocalCause
from l2tpfast.config import RadiusConfig
from l2tpfast.control.events import CallInfo, SessionClosed
from l2tpfast.ppp.events import LinkClosed
from l2tpfast.runtime.aaa import Accounting, RadiusAaa, names_session, terminate_cause

SESSION = SessionInfo("5f00000000000001", (7 << 16) | 9, "alice")
CONFIG = RadiusConfig(servers=(("192.0.2.10", 1812),), accounting_servers=(("192.0.2.10", 1813),), secret="s")


def _closed(*, by_peer: bool = False, result: int = 3, tunnel: bool = False) -> SessionClosed:
    return SessionClosed(7, 9, 12, result, None, None, None, by_peer, True, tunnel_closed=tunnel)


def _dae(**given: object) -> DaeRequest:
    return DaeRequest(
        kind="disconnect", identifier=1, addr=("127.0.0.1", 1), authenticator=bytes(16), **given
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "names"),
    [
        ({"acct_session_id": "5f00000000000001"}, True),
        ({"acct_session_id": "other"}, False),
        ({"user_name": "alice", "framed_ip_address": IPv4Address("10.0.0.7")}, True),
        ({"user_name": "alice", "framed_ip_address": IPv4Address("10.0.0.8")}, False),  # all must match
        ({"nas_port": (7 << 16) | 9}, True),
        ({"nas_port": 1}, False),
    ],
)
def test_a_dae_request_names_a_session_when_every_attribute_matches(
    given: dict[str, object], names: bool
) -> None:
    assert names_session(_dae(**given), Accounting(SESSION), "alice", IPv4Address("10.0.0.7")) is names


@pytest.mark.parametrize(
    ("local", "link", "event", "cause"),
    [
        (LocalCause.SESSION_TIMEOUT, None, _closed(), C.SESSION_TIMEOUT),
        (LocalCause.IDLE_TIMEOUT, None, _closed(), C.IDLE_TIMEOUT),
        (LocalCause.ADMIN_RESET, None, _closed(), C.ADMIN_RESET),
        (LocalCause.ADMIN_REBOOT, None, _closed(tunnel=True), C.ADMIN_REBOOT),
        (None, LinkClosed("keepalive: 3 Echo-Requests unanswered", False), _closed(result=1), C.LOST_CARRIER),
        (None, LinkClosed("User request", True), _closed(result=3), C.USER_REQUEST),
    ],
)
def test_the_stop_says_why(
    local: LocalCause | None, link: LinkClosed | None, event: SessionClosed, cause: int
) -> None:
    acct = Accounting(SESSION, local_cause=local)
    assert terminate_cause(acct, link, event, lns=True) == cause


def test_interim_interval_has_a_floor_and_timeouts_start_with_the_service() -> None:
    now = [100.0]
    aaa = RadiusAaa(CONFIG, lambda: now[0])
    reply = AccessReply(True, 2, acct_interim_interval=5, session_timeout=30, idle_timeout=20)
    acct = aaa.accounting_for(SESSION, reply)
    assert acct.interim == 60.0  # RFC 2869 5.16: not below 60 (min_interim_interval)
    aaa.started(acct, {"rx_packets": 4}, IPv4Address("10.0.0.7"))  # accounting off: nothing sent
    assert (acct.session_deadline, acct.next_interim, acct.idle_check) == (130.0, 160.0, 110.0)
    assert acct.session.framed_address == IPv4Address("10.0.0.7")
    assert aaa.accounting_for(SESSION, AccessReply(True, 2)).interim == CONFIG.interim_interval


def test_session_info_carries_the_call_and_unique_ids() -> None:
    aaa = RadiusAaa(CONFIG, lambda: 0.0)
    call = CallInfo(calling_number="0612", called_number="100", agent_circuit_id="c1", agent_remote_id="r1")
    first = aaa.session_info((7, 9), call, "alice")
    second = aaa.session_info((7, 10), None, "bob")
    assert first.acct_session_id != second.acct_session_id
    assert (first.nas_port, first.calling_station_id, first.called_station_id) == (
        (7 << 16) | 9,
        "0612",
        "100",
    )
    assert (first.agent_circuit_id, first.agent_remote_id) == (b"c1", b"r1")
    assert "secret=" not in repr(CONFIG)  # never shown
