"""Prometheus metrics (l2tpfast.runtime.metrics): the scrape says what the status dict says.

Status dicts are built here in the shape ``ControlNode.command({"cmd": "status"})`` returns; one
test takes the dict from a real LNS with a data plane instead and compares the scrape with
``l2tpfast status`` over the management socket. The server tests speak raw HTTP over asyncio
streams, so that broken requests can be sent too, and fetch once with urllib from a thread.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tools import free_udp_port, wait_until

from l2tpfast import __version__
from l2tpfast.config import parse_config
from l2tpfast.control.events import SessionEstablished
from l2tpfast.runtime.metrics import (
    CONTENT_TYPE,
    MAX_REQUEST_HEAD,
    MetricsServer,
    StatusCollector,
)
from l2tpfast.runtime.node import ControlNode, request
from l2tpfast.wire.constants import DropReason
from l2tpfast.wire.dtypes import SESSION_COUNTERS_DTYPE
from l2tpfast.wire.header import build_data_header

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: Bounds each test's event loop; everything happens on loopback.
DEADLINE = 20.0

LOOP_STATS = {
    "batches": 40,
    "udp_rx": 120,
    "udp_tx": 90,
    "tun_rx": 30,
    "tun_tx": 35,
    "tun_errors": 1,
    "send_errors": 2,
    "recv_errors": 3,
    "truncated": 4,
    "no_session": 5,
    "no_route": 6,
}


def _row(rx_packets: int, rx_bytes: int, tx_packets: int, tx_bytes: int, base: int) -> dict[str, int]:
    row = dict.fromkeys(SESSION_COUNTERS_DTYPE.names or (), 0)
    row.update(
        rx_packets=rx_packets,
        rx_bytes=rx_bytes,
        tx_packets=tx_packets,
        tx_bytes=tx_bytes,
        out_of_order=base + 1,
        duplicates=base + 2,
        reorder_timeouts=base + 3,
        dropped=base + 4,
    )
    return row


def _session(sid: int, state: str, counters: dict[str, int] | None) -> dict[str, Any]:
    session: dict[str, Any] = {
        "local_session_id": sid,
        "peer_session_id": sid + 100,
        "role": "lns",
        "call_type": "incoming",
        "state": state,
        "call_serial_number": sid,
    }
    if counters is not None:
        session["counters"] = counters
    return session


def _tunnel(tid: int, state: str, sessions: list[dict[str, Any]], retransmissions: int) -> dict[str, Any]:
    return {
        "local_tunnel_id": tid,
        "peer_tunnel_id": tid + 1000,
        "peer": "192.0.2.1:1701",
        "local": "192.0.2.2",
        "peer_host_name": "lac",
        "state": state,
        "initiator": False,
        "ns": 3,
        "nr": 4,
        "cwnd": 4,
        "idle": True,
        "peer_window": 4,
        "retransmissions": retransmissions,
        "duplicates": 1,
        "out_of_order": 2,
        "sessions": sessions,
    }


def lns_status() -> dict[str, Any]:
    """What a busy LNS with a data plane and PPP reports (``l2tpfast status --json``)."""
    return {
        "tunnels": [
            _tunnel(
                5,
                "established",
                [
                    _session(7, "established", _row(10, 1000, 20, 2000, 0)),
                    _session(8, "established", _row(1, 100, 2, 200, 10)),
                    _session(9, "wait-connect", None),
                ],
                retransmissions=2,
            ),
            _tunnel(6, "closing", [], retransmissions=3),
            _tunnel(11, "wait-ctl-conn", [], retransmissions=0),
        ],
        "counters": {"tunnels_accepted": 3, "hello_sent": 10, "cdn_sent": 1},
        "node": {"role": "lns", "listen": "0.0.0.0:1701", "pid": 4242, "started_at": 1000.0},
        "dataplane": {
            "sessions": 2,
            "loops": dict(LOOP_STATS),
            "drops": {"unknown_session": 4, "duplicate": 12},
            "ppp_frames_unhandled": 0,
            "ppp": {
                "links": {"network": 2, "authenticate": 1},
                "links_started": 5,
                "links_up": 2,
                "auth_accepted": 3,
                "auth_rejected": 1,
                "keepalive_failures": 1,
                "pool_exhausted": 0,
                "duplicate_logins_refused": 0,
                "frames_in": 50,
                "frames_out": 60,
                "frames_unknown_session": 0,
                "router_advertisements": 2,
                "ip_batch_errors": 0,
                "last_up_at": 1005.5,
                "pool": {"size": 254, "in_use": 2},
            },
            "tun": "l2tp0",
        },
        "events": [{"event": "TunnelEstablished", "local_tunnel_id": 5}],
    }


def scrape(status: Mapping[str, Any], **kw: Any) -> Samples:
    """The samples of one scrape of ``status``, keyed by sample name and labels."""
    return parse(exposition(status, **kw))


def exposition(status: Mapping[str, Any], **kw: Any) -> str:
    registry = CollectorRegistry()
    registry.register(StatusCollector(lambda: status, **kw))
    return generate_latest(registry).decode()


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _labels in samples}


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), DEADLINE))


# --- the collector -----------------------------------------------------------------------------


def test_scrape_equals_the_status_dict() -> None:
    status = lns_status()
    s = scrape(status)
    assert value(s, "l2tpfast_build_info", version=__version__) == 1
    assert value(s, "l2tpfast_node_info", role="lns", listen="0.0.0.0:1701") == 1
    # Every known state is a series, zero or not, so that a dashboard sees 0 rather than nothing.
    assert value(s, "l2tpfast_tunnels", state="established") == 1
    assert value(s, "l2tpfast_tunnels", state="closing") == 1
    assert value(s, "l2tpfast_tunnels", state="wait-ctl-conn") == 1
    assert value(s, "l2tpfast_tunnels", state="idle") == 0
    assert value(s, "l2tpfast_sessions", state="established") == 2
    assert value(s, "l2tpfast_sessions", state="wait-connect") == 1
    assert value(s, "l2tpfast_sessions", state="wait-reply") == 0
    # No endpoint-wide channel counters in this dict: the sum over the tunnels.
    assert value(s, "l2tpfast_control_retransmissions_total") == 2 + 3 + 0
    assert value(s, "l2tpfast_control_duplicate_messages_total") == 3
    assert value(s, "l2tpfast_control_out_of_order_messages_total") == 6
    for event, n in status["counters"].items():
        assert value(s, "l2tpfast_control_events_total", event=event) == n
    assert value(s, "l2tpfast_dataplane_sessions") == 2
    assert value(s, "l2tpfast_data_packets_total", direction="rx") == 11
    assert value(s, "l2tpfast_data_packets_total", direction="tx") == 22
    assert value(s, "l2tpfast_data_bytes_total", direction="rx") == 1100
    assert value(s, "l2tpfast_data_bytes_total", direction="tx") == 2200
    assert value(s, "l2tpfast_data_out_of_order_packets_total") == 1 + 11
    assert value(s, "l2tpfast_data_duplicate_packets_total") == 2 + 12
    assert value(s, "l2tpfast_data_reorder_timeouts_total") == 3 + 13
    assert value(s, "l2tpfast_data_session_dropped_packets_total") == 4 + 14
    for reason in DropReason:
        expected = status["dataplane"]["drops"].get(reason.name.lower(), 0)
        assert value(s, "l2tpfast_data_dropped_datagrams_total", reason=reason.name.lower()) == expected
    assert value(s, "l2tpfast_dataplane_batches_total") == 40
    assert value(s, "l2tpfast_dataplane_socket_datagrams_total", direction="rx") == 120
    assert value(s, "l2tpfast_dataplane_socket_datagrams_total", direction="tx") == 90
    assert value(s, "l2tpfast_dataplane_tun_packets_total", direction="rx") == 30
    assert value(s, "l2tpfast_dataplane_tun_packets_total", direction="tx") == 35
    assert value(s, "l2tpfast_dataplane_errors_total", kind="tun") == 1
    assert value(s, "l2tpfast_dataplane_errors_total", kind="send") == 2
    assert value(s, "l2tpfast_dataplane_errors_total", kind="recv") == 3
    assert value(s, "l2tpfast_dataplane_discarded_total", reason="truncated") == 4
    assert value(s, "l2tpfast_dataplane_discarded_total", reason="no_session") == 5
    assert value(s, "l2tpfast_dataplane_discarded_total", reason="no_route") == 6
    assert value(s, "l2tpfast_ppp_frames_unhandled_total") == 0
    assert value(s, "l2tpfast_ppp_authentications_total", result="accepted") == 3
    assert value(s, "l2tpfast_ppp_authentications_total", result="rejected") == 1
    assert value(s, "l2tpfast_ppp_keepalive_failures_total") == 1
    assert value(s, "l2tpfast_ppp_links", phase="network") == 2
    assert value(s, "l2tpfast_ppp_links", phase="authenticate") == 1
    assert value(s, "l2tpfast_ppp_links", phase="dead") == 0
    assert value(s, "l2tpfast_ppp_pool_addresses") == 254
    assert value(s, "l2tpfast_ppp_pool_addresses_in_use") == 2
    assert value(s, "l2tpfast_ppp_links_started_total") == 5
    assert value(s, "l2tpfast_ppp_frames_out_total") == 60
    assert value(s, "l2tpfast_ppp_router_advertisements_total") == 2
    # Loop time is not a count; the node's start time has its own family.
    assert not any("last_up_at" in name for name in names(s))
    assert "l2tpfast_start_time_seconds" in names(s)


#: Every family a full LNS scrape exports (the list operators build dashboards on).
FAMILIES = {
    "l2tpfast_build_info",
    "l2tpfast_node_info",
    "l2tpfast_start_time_seconds",
    "l2tpfast_tunnels",
    "l2tpfast_sessions",
    "l2tpfast_control_retransmissions_total",
    "l2tpfast_control_duplicate_messages_total",
    "l2tpfast_control_out_of_order_messages_total",
    "l2tpfast_control_events_total",
    "l2tpfast_dataplane_sessions",
    "l2tpfast_data_packets_total",
    "l2tpfast_data_bytes_total",
    "l2tpfast_data_out_of_order_packets_total",
    "l2tpfast_data_duplicate_packets_total",
    "l2tpfast_data_reorder_timeouts_total",
    "l2tpfast_data_session_dropped_packets_total",
    "l2tpfast_data_dropped_datagrams_total",
    "l2tpfast_dataplane_batches_total",
    "l2tpfast_dataplane_socket_datagrams_total",
    "l2tpfast_dataplane_tun_packets_total",
    "l2tpfast_dataplane_errors_total",
    "l2tpfast_dataplane_discarded_total",
    "l2tpfast_ppp_frames_unhandled_total",
    "l2tpfast_ppp_authentications_total",
    "l2tpfast_ppp_keepalive_failures_total",
    "l2tpfast_ppp_links",
    "l2tpfast_ppp_pool_addresses",
    "l2tpfast_ppp_pool_addresses_in_use",
    "l2tpfast_ppp_links_started_total",
    "l2tpfast_ppp_links_up_total",
    "l2tpfast_ppp_pool_exhausted_total",
    "l2tpfast_ppp_duplicate_logins_refused_total",
    "l2tpfast_ppp_frames_in_total",
    "l2tpfast_ppp_frames_out_total",
    "l2tpfast_ppp_frames_unknown_session_total",
    "l2tpfast_ppp_router_advertisements_total",
    "l2tpfast_ppp_ip_batch_errors_total",
}


def test_the_families_of_a_full_scrape() -> None:
    status = lns_status()
    status["radius"] = {"access_requests": 1}
    s = scrape(status)
    assert names(s) - {"l2tpfast_radius_access_requests_total"} == FAMILIES
    # Counters end in _total and nothing else does (Prometheus naming); all share the prefix.
    for family in text_string_to_metric_families(exposition(status)):
        assert family.name.startswith("l2tpfast_"), family.name
        for sample in family.samples:
            assert sample.name.endswith("_total") == (family.type == "counter"), sample.name


def test_node_totals_win_over_the_sum_of_open_sessions() -> None:
    """Counters of closed sessions leave the per-session sum; dataplane.totals keeps them."""
    status = lns_status()
    totals = {"rx_packets": 500, "rx_bytes": 50_000, "tx_packets": 600, "tx_bytes": 60_000}
    status["dataplane"]["totals"] = totals
    s = scrape(status)
    assert value(s, "l2tpfast_data_packets_total", direction="rx") == 500
    assert value(s, "l2tpfast_data_bytes_total", direction="tx") == 60_000
    # A field the totals do not carry still comes from the sum.
    assert value(s, "l2tpfast_data_duplicate_packets_total") == 2 + 12
    # A field the dtype does not name (yet) is exported once, from the totals before the sum.
    totals["sessions_closed"] = 40
    for tunnel in status["tunnels"]:
        for session in tunnel["sessions"]:
            session.get("counters", {})["sessions_closed"] = 1
    assert value(scrape(status), "l2tpfast_data_session_sessions_closed_total") == 40
    # Totals for every field: the session rows are not even read.
    totals.update(dict.fromkeys(SESSION_COUNTERS_DTYPE.names or (), 1))
    status["tunnels"][0]["sessions"][0]["counters"] = "not read"
    s = scrape(status)
    assert value(s, "l2tpfast_data_duplicate_packets_total") == 1
    assert value(s, "l2tpfast_data_bytes_total", direction="rx") == 1


def test_endpoint_channel_counters_win_over_the_tunnel_sum() -> None:
    status = lns_status()
    status["counters"].update(retransmissions=77, duplicates=5, out_of_order=6)
    s = scrape(status)
    assert value(s, "l2tpfast_control_retransmissions_total") == 77
    assert value(s, "l2tpfast_control_duplicate_messages_total") == 5
    assert value(s, "l2tpfast_control_out_of_order_messages_total") == 6
    # They are not repeated as generic events.
    assert ("l2tpfast_control_events_total", frozenset({("event", "retransmissions")})) not in s


def test_a_lac_without_data_plane_or_ppp() -> None:
    status = lns_status()
    del status["dataplane"]
    status["node"]["role"] = "lac"
    s = scrape(status)
    assert value(s, "l2tpfast_tunnels", state="established") == 1
    assert value(s, "l2tpfast_sessions", state="established") == 2
    assert not any(n.startswith(("l2tpfast_data", "l2tpfast_ppp")) for n in names(s)), names(s)


def test_a_data_plane_without_ppp() -> None:
    status = lns_status()
    status["dataplane"]["ppp"] = None
    s = scrape(status)
    assert value(s, "l2tpfast_data_packets_total", direction="rx") == 11
    assert {n for n in names(s) if n.startswith("l2tpfast_ppp")} == {"l2tpfast_ppp_frames_unhandled_total"}


def test_an_empty_status_is_only_build_info() -> None:
    s = scrape({})
    assert value(s, "l2tpfast_build_info", version=__version__) == 1
    # No tunnels: zero per state, and the channel counters at zero.
    assert value(s, "l2tpfast_tunnels", state="established") == 0
    assert value(s, "l2tpfast_control_retransmissions_total") == 0
    assert "l2tpfast_node_info" not in names(s)


def test_radius_counters_are_exported_as_they_come() -> None:
    status: dict[str, Any] = {
        "radius": {
            "access_requests": 3,
            "timeouts_total": 1,  # no _total_total
            "bad name-2": 2,  # made a valid name
            "enabled": True,  # not a count
            "server": "192.0.2.9",  # not a count
        }
    }
    s = scrape(status)
    radius = {n: v for (n, _labels), v in s.items() if n.startswith("l2tpfast_radius")}
    assert radius == {
        "l2tpfast_radius_access_requests_total": 3,
        "l2tpfast_radius_timeouts_total": 1,
        "l2tpfast_radius_bad_name_2_total": 2,
    }


def test_a_free_form_key_cannot_break_the_exposition() -> None:
    """A PPP key that maps onto a labelled family's name is left out; the scrape stays valid."""
    status = lns_status()
    status["dataplane"]["ppp"]["authentications"] = 9
    s = scrape(status)
    assert value(s, "l2tpfast_ppp_authentications_total", result="accepted") == 3
    assert ("l2tpfast_ppp_authentications_total", frozenset()) not in s


def test_start_time_from_loop_time_or_unix_time() -> None:
    status = lns_status()  # started_at 1000.0 on the monotonic clock
    s = scrape(status, wall_clock=lambda: 1_800_000_500.0, monotonic=lambda: 1500.0)
    assert value(s, "l2tpfast_start_time_seconds") == 1_800_000_000.0
    status["node"]["started_at_unix"] = 1_700_000_000.25
    s = scrape(status, wall_clock=lambda: 1_800_000_500.0, monotonic=lambda: 1500.0)
    assert value(s, "l2tpfast_start_time_seconds") == 1_700_000_000.25


def test_each_scrape_takes_a_fresh_snapshot() -> None:
    status = lns_status()
    calls: list[int] = []

    def snapshot() -> dict[str, Any]:
        calls.append(1)
        return copy.deepcopy(status)

    server = MetricsServer(snapshot, "127.0.0.1", 0)
    first = parse(server.scrape().decode())
    status["tunnels"][0]["sessions"][0]["counters"]["rx_packets"] += 5
    second = parse(server.scrape().decode())
    assert len(calls) == 2
    assert value(second, "l2tpfast_data_packets_total", direction="rx") == (
        value(first, "l2tpfast_data_packets_total", direction="rx") + 5
    )
    # The default registry also carries the standard process_* families.
    assert "process_start_time_seconds" in names(first)


# --- the HTTP server ---------------------------------------------------------------------------


async def _http(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read the whole reply: (status code, header fields, body)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(raw)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert int(fields["content-length"]) == len(body) or raw.startswith(b"HEAD")
    return int(status_line.split()[1]), fields, body


def _serve(
    body: Callable[[MetricsServer], Coroutine[Any, Any, None]],
    snapshot: Callable[[], Mapping[str, Any]] = lns_status,
    **kw: Any,
) -> None:
    async def main() -> None:
        server = MetricsServer(snapshot, "127.0.0.1", 0, **kw)
        await server.start()
        try:
            await body(server)
        finally:
            server.close()
            await server.wait_closed()

    run(main)


def test_get_metrics_with_urllib_from_a_thread() -> None:
    """A scraper in another thread; the snapshot is taken in the loop's thread all the same."""
    threads: list[int] = []
    status = lns_status()
    status["node"]["started_at_unix"] = 1_700_000_000.0  # the same start time for both collectors

    def snapshot() -> dict[str, Any]:
        threads.append(threading.get_ident())
        return status

    async def body(server: MetricsServer) -> None:
        host, port = server.address

        def fetch() -> tuple[int, str, str]:
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
                return reply.status, reply.headers["Content-Type"], reply.read().decode()

        code, content_type, text = await asyncio.to_thread(fetch)
        assert code == 200 and content_type == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
        samples = {k: v for k, v in parse(text).items() if not k[0].startswith("process_")}
        assert samples == scrape(status)
        assert threads == [threading.get_ident()]

    _serve(body, snapshot)


def test_http_replies() -> None:
    async def body(server: MetricsServer) -> None:
        address = server.address
        code, fields, text = await _http(address, b"GET /metrics?x=1 HTTP/1.0\r\nHost: a\r\n\r\n")
        assert code == 200 and fields["content-type"] == CONTENT_TYPE and fields["connection"] == "close"
        assert value(parse(text.decode()), "l2tpfast_dataplane_sessions") == 2
        code, fields, text = await _http(address, b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        assert code == 200 and text == b"" and int(fields["content-length"]) > 1000
        code, _, _ = await _http(address, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert code == 404
        code, _, _ = await _http(address, b"GET /metricsx HTTP/1.1\r\n\r\n")
        assert code == 404
        code, fields, _ = await _http(address, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert code == 405 and fields["allow"] == "GET, HEAD"
        for bad in (
            b"hello\r\n\r\n",
            b"GET /metrics\r\n\r\n",  # HTTP/0.9 style
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n folded: field\r\n\r\n",
            b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
        ):
            code, _, _ = await _http(address, bad)
            assert code == 400, bad
        huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST_HEAD + b"\r\n\r\n"
        code, _, _ = await _http(address, huge)
        assert code == 431
        assert server.scrapes == 2  # only the GET and the HEAD of /metrics

    _serve(body)


def test_a_silent_client_gets_408_and_the_server_goes_on() -> None:
    async def body(server: MetricsServer) -> None:
        code, _, _ = await _http(server.address, b"GET /metrics HTTP/1.1\r\n")  # no blank line
        assert code == 408
        code, _, _ = await _http(server.address, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert code == 200

    _serve(body, read_timeout=0.2)


def test_a_failing_snapshot_is_a_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def snapshot() -> dict[str, Any]:
        raise RuntimeError("boom")

    async def body(server: MetricsServer) -> None:
        code, _, text = await _http(server.address, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert code == 500 and b"boom" not in text

    _serve(body, snapshot)
    assert "metrics scrape failed" in caplog.text and "boom" in caplog.text


def test_close_stops_listening() -> None:
    async def main() -> None:
        server = MetricsServer(lns_status, "127.0.0.1", 0)
        await server.start()
        address = server.address
        idle = await asyncio.open_connection(*address)  # a connection that never sends
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5.0)
        assert await asyncio.wait_for(idle[0].read(), 5.0) == b""  # dropped by close()
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)

    run(main)


def test_urllib_sees_404() -> None:
    async def body(server: MetricsServer) -> None:
        host, port = server.address

        def fetch() -> int:
            try:
                urllib.request.urlopen(f"http://{host}:{port}/nothing", timeout=5)
            except urllib.error.HTTPError as exc:
                return exc.code
            return 200

        assert await asyncio.to_thread(fetch) == 404

    _serve(body)


# --- a real node ------------------------------------------------------------------------------


def test_a_real_lns_scrape_agrees_with_status(tmp_path: Path) -> None:
    """An LNS with a data plane: the scrape over HTTP and ``status`` over the management socket."""
    lns_port, lac_port = free_udp_port(), free_udp_port()
    sock = str(tmp_path / "lns.sock")

    async def main() -> None:
        lns = ControlNode(
            parse_config(
                {
                    "node": {"role": "lns", "listen": "127.0.0.1", "port": lns_port, "control_socket": sock},
                    "dataplane": {"threads": 1, "tun": ""},
                }
            )
        )
        lac = ControlNode(
            parse_config(
                {
                    "node": {"role": "lac", "listen": "127.0.0.2", "port": lac_port},
                    "lac": {"lns": "127.0.0.1", "lns_port": lns_port, "sessions": 2},
                }
            )
        )
        events: list[object] = []
        lns.on_event = events.append
        await lns.start()
        await lac.start()
        server = MetricsServer(lambda: lns.command({"cmd": "status"}), "127.0.0.1", 0)
        await server.start()
        try:
            await wait_until(lambda: sum(isinstance(e, SessionEstablished) for e in events) == 2)
            up = next(e for e in events if isinstance(e, SessionEstablished))
            lac.close()  # free the LAC's address and port, to speak for it below
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.2", lac_port))
                for _ in range(7):
                    s.sendto(
                        build_data_header(up.local_tunnel_id, up.local_session_id) + b"\xff\x03\xc0\x21\x01",
                        ("127.0.0.1", lns_port),
                    )
            await wait_until(lambda: lns.ppp_frames == 7)
            status = await request(sock, {"cmd": "status"})
            code, _, text = await _http(server.address, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert code == 200
            s = parse(text.decode())
            assert value(s, "l2tpfast_node_info", role="lns", listen=f"127.0.0.1:{lns_port}") == 1
            assert value(s, "l2tpfast_tunnels", state="established") == len(status["tunnels"]) == 1
            assert value(s, "l2tpfast_sessions", state="established") == 2
            assert value(s, "l2tpfast_dataplane_sessions") == status["dataplane"]["sessions"] == 2
            rows = [x["counters"] for x in status["tunnels"][0]["sessions"]]
            assert (
                value(s, "l2tpfast_data_packets_total", direction="rx")
                == sum(r["rx_packets"] for r in rows)
                == 7
            )
            assert value(s, "l2tpfast_data_bytes_total", direction="rx") == 7 * 5
            loops = status["dataplane"]["loops"]
            assert value(s, "l2tpfast_dataplane_socket_datagrams_total", direction="rx") == loops["udp_rx"]
            assert value(s, "l2tpfast_ppp_frames_unhandled_total") == 7
            channel = ("retransmissions", "duplicates", "out_of_order")
            for event, n in status["counters"].items():
                if event not in channel:  # those three have metrics of their own
                    assert value(s, "l2tpfast_control_events_total", event=event) == n
            assert value(s, "l2tpfast_control_retransmissions_total") == status["counters"]["retransmissions"]
        finally:
            server.close()
            await server.wait_closed()
            lac.close()
            lns.close()

    run(main)
