"""Acceptance test: many tunnels and calls over a lossy, duplicating, reordering link (RFC 2661 5.8).

Ten tunnels of a hundred calls each come up, are cleared call by call, and the
tunnels are stopped, while the link drops 20 % of datagrams, duplicates 5 %
and delays each by up to 0.3 s. Every control message must reach the tunnel
machine exactly once and in order; nothing may time out or be torn down by
an error. The seed is in every assertion message.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from ctlpair import LNS_ADDR, Pair

from l2tpfast.control.endpoint import Endpoint
from l2tpfast.control.events import SessionClosed, SessionEstablished, TunnelClosed, TunnelEstablished
from l2tpfast.control.tunnel import BadMessage, Refusal, Tunnel
from l2tpfast.wire.constants import AvpType, MessageType, StopCCNResult
from l2tpfast.wire.message import ControlMessage, parse_message

TUNNELS = 10
CALLS = 100
Key = tuple[str, int]  # (side, local Tunnel ID) of the receiving tunnel


class Recorder:
    """What each tunnel machine was handed: (Ns, message type), in the order it was handed."""

    def __init__(self, p: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
        self.delivered: dict[Key, list[tuple[int, int | None]]] = defaultdict(list)
        self.p = p
        deliver = Tunnel._deliver
        check_peer_start = Tunnel.check_peer_start

        def recording_deliver(tunnel: Tunnel, item: ControlMessage | BadMessage, now: float) -> None:
            assert isinstance(item, ControlMessage), f"refused message {item} (seed {p.seed})"
            self.delivered[self.key(tunnel)].append((item.ns, item.message_type))
            deliver(tunnel, item, now)

        def recording_check(tunnel: Tunnel, message: ControlMessage) -> Refusal | None:
            # The endpoint hands an SCCRQ to the new tunnel's machine itself, not through _deliver.
            if message.message_type == MessageType.SCCRQ:
                self.delivered[self.key(tunnel)].append((message.ns, message.message_type))
            return check_peer_start(tunnel, message)

        monkeypatch.setattr(Tunnel, "_deliver", recording_deliver)
        monkeypatch.setattr(Tunnel, "check_peer_start", recording_check)

    def key(self, tunnel: Tunnel) -> Key:
        return ("lac" if tunnel.endpoint is self.p.lac else "lns", tunnel.local_tunnel_id)


def sent_by_peer(p: Pair) -> dict[Key, dict[int, int]]:
    """For each receiving tunnel, the message type the peer sent under each Ns (retransmissions too)."""
    lns_tid_for = {e.peer_tunnel_id: e.local_tunnel_id for e in p.events("lns", TunnelEstablished)}
    sent: dict[Key, dict[int, int]] = defaultdict(dict)
    for side, data in p.wire:
        message = parse_message(data)
        if message.is_zlb:
            continue
        assert message.message_type is not None
        other = "lns" if side == "lac" else "lac"
        tid = message.tunnel_id
        if tid == 0:
            assert message.message_type == MessageType.SCCRQ and side == "lac", p.seed
            tid = lns_tid_for[message[AvpType.ASSIGNED_TUNNEL_ID]]
        previous = sent[(other, tid)].setdefault(message.ns, message.message_type)
        assert previous == message.message_type, f"Ns {message.ns} reused (seed {p.seed})"
    return sent


def count(p: Pair, side: str, kind: type) -> int:
    return len(p.events(side, kind))


def endpoint_empty(ep: Endpoint) -> bool:
    return not ep.tunnels and ep.get_timer() is None and not ep._requeued


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thousand_calls_over_faulty_link(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.perf_counter()
    p = Pair(seed=seed, loss=0.2, duplicate=0.05, delay=0.3)
    recorder = Recorder(p, monkeypatch)
    why = f"(seed {seed})"

    tids = [p.lac.open_tunnel(LNS_ADDR, p.now) for _ in range(TUNNELS)]
    p.run_until(lambda: count(p, "lac", TunnelEstablished) == TUNNELS, limit=300)
    calls = [p.lac.open_session(tid, p.now) for tid in tids for _ in range(CALLS)]
    total = TUNNELS * CALLS
    p.run_until(
        lambda: count(p, "lac", SessionEstablished) == total and count(p, "lns", SessionEstablished) == total,
        limit=1200,
    )
    for tid, sid in calls:
        p.lac.close_session(tid, sid, p.now)
    p.run_until(lambda: count(p, "lns", SessionClosed) == total, limit=1200)
    for tid in tids:
        p.lac.close_tunnel(tid, p.now)
    p.run_until(lambda: endpoint_empty(p.lac) and endpoint_empty(p.lns), limit=300)
    p.run_for(60.0)  # nothing may come back to life, nor any late error surface

    assert p.to_lns.lost and p.to_lac.lost, why  # the link really was faulty
    for side in ("lac", "lns"):
        assert count(p, side, TunnelEstablished) == TUNNELS, why
        assert count(p, side, SessionEstablished) == total, why
        assert count(p, side, SessionClosed) == total, why
        assert endpoint_empty(p.lac if side == "lac" else p.lns), why
    assert sorted(e.local_session_id for e in p.events("lac", SessionClosed)) == sorted(s for _, s in calls)
    assert all(not e.by_peer for e in p.events("lac", SessionClosed)), why
    assert all(e.by_peer for e in p.events("lns", SessionClosed)), why
    closed = [(e.result_code, e.by_peer, e.message) for e in p.events("lac", TunnelClosed)]
    assert closed == [(StopCCNResult.GENERAL_REQUEST, False, "closed by administrator")] * TUNNELS, why
    closed = [(e.result_code, e.by_peer, e.message) for e in p.events("lns", TunnelClosed)]
    assert closed == [(StopCCNResult.GENERAL_REQUEST, True, "closed by administrator")] * TUNNELS, why

    # Exactly once and in order: each tunnel machine saw Ns 0, 1, 2, ... and the peer's types.
    sent = sent_by_peer(p)
    assert len(recorder.delivered) == 2 * TUNNELS, why
    assert set(recorder.delivered) == set(sent), why
    for key, got in recorder.delivered.items():
        ns = [n for n, _ in got]
        assert ns == list(range(len(ns))), f"{key}: delivered Ns {ns[:20]}... {why}"
        assert got == [(n, sent[key][n]) for n in ns], f"{key}: types differ {why}"
        if key[0] == "lns":
            # everything the LAC sent, up to its StopCCN, reached the LNS's machine
            assert len(ns) == len(sent[key]), f"{key}: {len(ns)} of {len(sent[key])} delivered {why}"
            assert got[-1][1] == MessageType.StopCCN, why
    lns_types = [t for key, got in recorder.delivered.items() if key[0] == "lns" for _, t in got]
    for message_type, n in ((MessageType.ICRQ, total), (MessageType.ICCN, total), (MessageType.CDN, total)):
        assert lns_types.count(message_type) == n, f"{message_type.name} {why}"

    elapsed = time.perf_counter() - started
    assert elapsed < 15.0, f"took {elapsed:.1f}s {why}"
