"""The asyncio shell over real UDP sockets on loopback: two nodes, the management socket, shutdown.

A LAC node dials an LNS node bound to the wildcard address through 127.0.0.3: the tunnel only comes
up if the LNS answers from 127.0.0.3 (IP_PKTINFO), because the LAC drops datagrams from any other
address for its tunnel.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest
from tools import free_udp_port, require_ipv6_loopback, wait_until

from l2tpfast.config import parse_config
from l2tpfast.control.events import SessionEstablished, TunnelClosed, TunnelEstablished
from l2tpfast.runtime.node import ControlNode, request
from l2tpfast.runtime.udp import UdpTransport


def _nodes(tmp_path: Path, lns_port: int, lac_port: int, sessions: int) -> tuple[ControlNode, ControlNode]:
    lns = ControlNode(
        parse_config(
            {
                "node": {
                    "role": "lns",
                    "listen": "0.0.0.0",
                    "port": lns_port,
                    "control_socket": str(tmp_path / "lns.sock"),
                },
                "tunnel": {"host_name": "lns", "secret": "s3cret", "hide_avps": True},
            }
        )
    )
    lac = ControlNode(
        parse_config(
            {
                "node": {
                    "role": "lac",
                    "listen": "127.0.0.1",
                    "port": lac_port,
                    "control_socket": str(tmp_path / "lac.sock"),
                },
                "tunnel": {"host_name": "lac", "secret": "s3cret"},
                "lac": {"lns": "127.0.0.3", "lns_port": lns_port, "sessions": sessions},
            }
        )
    )
    return lns, lac


def test_two_nodes_over_loopback(tmp_path: Path) -> None:
    async def main() -> None:
        lns, lac = _nodes(tmp_path, free_udp_port(), free_udp_port(), sessions=3)
        lns_events: list[object] = []
        lac_events: list[object] = []
        lns.on_event = lns_events.append
        lac.on_event = lac_events.append
        await lns.start()
        await lac.start()
        try:
            await wait_until(lambda: sum(isinstance(e, SessionEstablished) for e in lns_events) == 3)
            await wait_until(lambda: sum(isinstance(e, SessionEstablished) for e in lac_events) == 3)
            up = next(e for e in lac_events if isinstance(e, TunnelEstablished))
            assert up.peer[0] == "127.0.0.3"  # the LNS answered from the address we dialled
            status = await request(str(tmp_path / "lns.sock"), {"cmd": "status"})
            (tunnel,) = status["tunnels"]
            assert tunnel["state"] == "established"
            assert tunnel["local"] == "127.0.0.3"
            assert len(tunnel["sessions"]) == 3
            assert {s["state"] for s in tunnel["sessions"]} == {"established"}
            # ctl: close one session from the LAC side, the LNS sees it go.
            lac_status = await request(str(tmp_path / "lac.sock"), {"cmd": "status"})
            lac_tunnel = lac_status["tunnels"][0]
            sid = lac_tunnel["sessions"][0]["local_session_id"]
            await request(
                str(tmp_path / "lac.sock"),
                {"cmd": "close-session", "tunnel_id": lac_tunnel["local_tunnel_id"], "session_id": sid},
            )
            await wait_until(lambda: len(lns.endpoint.tunnels[tunnel["local_tunnel_id"]].sessions) == 2)
            # Shutdown of the LAC: StopCCN (result 6), acknowledged, and the LNS reports it.
            await lac.shutdown(timeout=3.0)
            await wait_until(lambda: any(isinstance(e, TunnelClosed) for e in lns_events))
            closed = next(e for e in lns_events if isinstance(e, TunnelClosed))
            assert closed.by_peer and closed.result_code == 6
            assert not lac.endpoint.tunnels or all(t.closing for t in lac.endpoint.tunnels.values())
        finally:
            lac.close()
            lns.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_bad_command_is_an_error_reply(tmp_path: Path) -> None:
    async def main() -> None:
        lns, _ = _nodes(tmp_path, free_udp_port(), free_udp_port(), sessions=0)
        await lns.start()
        try:
            with pytest.raises(Exception, match="unknown command"):
                await request(str(tmp_path / "lns.sock"), {"cmd": "explode"})
            with pytest.raises(Exception, match="no open tunnel"):
                await request(str(tmp_path / "lns.sock"), {"cmd": "close-tunnel", "tunnel_id": 4242})
        finally:
            lns.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_ipv6_tunnel_over_loopback(tmp_path: Path) -> None:
    """RFC 2661 8.1 over IPv6: an LNS on the IPv6 wildcard answers from ::1, where it was reached."""
    require_ipv6_loopback()
    with UdpTransport("::1", 0) as probe:
        lns_port = probe.local_address[1]
    with UdpTransport("::1", 0) as probe:
        lac_port = probe.local_address[1]

    async def main() -> None:
        lns = ControlNode(parse_config({"node": {"role": "lns", "listen": "::", "port": lns_port}}))
        lac = ControlNode(
            parse_config(
                {
                    "node": {"role": "lac", "listen": "::1", "port": lac_port},
                    "lac": {"lns": "::1", "lns_port": lns_port, "sessions": 2},
                }
            )
        )
        events: list[object] = []
        lac.on_event = events.append
        await lns.start()
        await lac.start()
        try:
            await wait_until(lambda: sum(isinstance(e, SessionEstablished) for e in events) == 2)
            (tunnel,) = lns.endpoint.tunnels.values()
            assert tunnel.peer == ("::1", lac_port) and tunnel.local == "::1"
        finally:
            lac.close()
            lns.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_lns_with_the_data_plane_in_two_threads(tmp_path: Path) -> None:
    """[dataplane] with threads = 2 and no TUN: two SO_REUSEPORT sockets, each with a compiled
    forwarding loop; control messages reach the core through the loops' hand-off; data for the
    session is counted in status; PPP frames wait for the PPP engine (counted)."""
    from l2tpfast.wire.header import build_data_header

    lns_port, lac_port = free_udp_port(), free_udp_port()

    async def main() -> None:
        lns = ControlNode(
            parse_config(
                {
                    "node": {
                        "role": "lns",
                        "listen": "127.0.0.1",
                        "port": lns_port,
                        "control_socket": str(tmp_path / "lns.sock"),
                    },
                    "dataplane": {"threads": 2, "tun": ""},
                }
            )
        )
        lac = ControlNode(
            parse_config(
                {
                    "node": {"role": "lac", "listen": "127.0.0.2", "port": lac_port},
                    "lac": {"lns": "127.0.0.1", "lns_port": lns_port, "sessions": 3},
                }
            )
        )
        events: list[object] = []
        lns.on_event = events.append
        await lns.start()
        await lac.start()
        try:
            assert len(lns.dataplane.forwarders) == 2
            await wait_until(lambda: sum(isinstance(e, SessionEstablished) for e in events) == 3)
            assert lns.dataplane.path.session_count() == 3
            up = next(e for e in events if isinstance(e, SessionEstablished))
            lac.close()  # free the LAC's address and port, to speak for it below
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.2", lac_port))
                for _ in range(25):
                    lcp = (
                        build_data_header(up.local_tunnel_id, up.local_session_id)
                        + b"\xff\x03\xc0\x21\x01\x01\x00\x04"
                    )
                    s.sendto(lcp, ("127.0.0.1", lns_port))
            await wait_until(lambda: lns.ppp_frames == 25)
            status = await request(str(tmp_path / "lns.sock"), {"cmd": "status"})
            (tunnel,) = status["tunnels"]
            counters = next(
                s["counters"] for s in tunnel["sessions"] if s["local_session_id"] == up.local_session_id
            )
            assert counters["rx_packets"] == 25 and counters["rx_bytes"] == 25 * 8
            assert tunnel["counters"]["rx_packets"] == 25
            assert status["dataplane"]["loops"]["udp_rx"] >= 25 + 3 * 2  # data, and ICRQ + ICCN per call
            assert status["dataplane"]["ppp_frames_unhandled"] == 25
            # The same, as a user reads it.
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "l2tpfast",
                "status",
                "-s",
                str(tmp_path / "lns.sock"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            text = out.decode()
            assert proc.returncode == 0, err.decode()
            assert "data plane: 3 sessions" in text and "rx 25/200 B" in text, text
            assert "data rx 25 pkts 200 B" in text, text
        finally:
            lac.close()
            lns.close()

    asyncio.run(asyncio.wait_for(main(), 30))
