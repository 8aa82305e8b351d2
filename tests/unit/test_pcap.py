"""Control captures (l2tpfast.runtime.pcap): tshark reads what ControlCapture writes.

Every control message type of tests/catalog.py (plain AVPs) and a ZLB go into a capture, in both
directions, over UDP on IPv4 and IPv6 and over IP protocol 115. tshark (the judge of tests/lab.py,
with UDP checksums checked) must decode each UDP frame as L2TP with the message type, addresses
and ports we recorded, and report nothing malformed and no expert warning. Protocol-115 frames are
L2TPv2 without the RFC 3931 zero Session ID, as ``runtime/ip115.py`` sends them; tshark reads
them as L2TPv3 data (tests/unit/test_ip115.py), so there it must show protocol 115 and our exact
bytes, and our own parser reads the message type back.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import lab
import pytest
from catalog import all_cases
from pcaputil import read_udp_payloads
from tools import require_tool

from l2tpfast.runtime.pcap import LINKTYPE_RAW, PCAP_MAGIC, SNAPLEN, ControlCapture
from l2tpfast.wire.message import build_message, build_zlb, parse_message

#: tshark reads a few dozen frames in well under a second; this bounds a hang.
TSHARK_TIMEOUT = 30.0
START = 1_764_097_200.0  # 2025-11-25T19:00:00Z
LAC4, LNS4 = ("192.0.2.1", 40001), ("192.0.2.2", 1701)
LAC6, LNS6 = ("2001:db8::1", 40001), ("2001:db8::2", 1701)


def _messages() -> list[tuple[str, bytes]]:
    """(RFC short name, datagram) for each message type, then a ZLB."""
    out = []
    for index, case in enumerate(c for c in all_cases() if not c.hide):
        message = build_message(
            case.message_type,
            case.avps,
            tunnel_id=case.tunnel_id,
            session_id=case.session_id,
            ns=index,
            nr=index + 1,
        )
        out.append((case.message_type.name, message.encode()))
    out.append(("ZLB", build_zlb(0x2345, 5, 6)))
    return out


MESSAGES = _messages()


def _tshark() -> str:
    return require_tool("tshark", "the independent judge of the capture files")


def _shown(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@pytest.mark.parametrize(("lac", "lns"), [(LAC4, LNS4), (LAC6, LNS6)], ids=["ipv4", "ipv6"])
def test_tshark_decodes_every_control_message(tmp_path: Path, lac: Any, lns: Any) -> None:
    tshark = _tshark()
    pcap = tmp_path / "control.pcap"
    expected = []
    with ControlCapture(pcap) as capture:
        for index, (name, datagram) in enumerate(MESSAGES):
            # Both directions, as a node records what it receives and what it sends.
            src, dst = (lac, lns) if index % 2 == 0 else (lns, lac)
            capture.record(datagram, src, dst, START + index * 0.25)
            expected.append((name, _shown(src), _shown(dst)))
        assert capture.records == len(MESSAGES)

    verdict = lab.judge(pcap, tshark, check_checksum=True, timeout=TSHARK_TIMEOUT)
    assert verdict.problems == [], verdict.problems
    assert [(f.message, f.src, f.dst) for f in verdict.frames_detail] == expected, verdict.table()
    ip = "ip" if lns is LNS4 else "ipv6"
    rows = lab.tshark_fields(
        tshark,
        pcap,
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-e",
        "frame.time_epoch",
        "-e",
        "frame.protocols",
        "-e",
        "ip.checksum.status",
        "-e",
        "udp.checksum.status",
        "-e",
        "udp.length",
    )
    good = "1"  # Wireshark's PROTO_CHECKSUM_E_GOOD
    for index, (row, (_name, datagram)) in enumerate(zip(rows, MESSAGES, strict=True)):
        time_epoch, protocols, ip_checksum, udp_checksum, udp_length = row
        assert float(time_epoch) == pytest.approx(START + index * 0.25, abs=1e-6)
        # ICCN's proxy LCP AVPs hold PPP packets, which tshark decodes too (":ppp" follows).
        assert protocols.startswith(f"raw:{ip}:udp:l2tp"), protocols
        assert ip_checksum == (good if ip == "ip" else "")  # IPv6 has no header checksum
        assert udp_checksum == good and int(udp_length) == 8 + len(datagram)
    # An independent reader (tests/pcaputil.py) finds the same datagrams.
    assert [(d.src, d.dst, d.payload) for d in read_udp_payloads(pcap)] == [
        ((lac, lns) if i % 2 == 0 else (lns, lac)) + (datagram,) for i, (_, datagram) in enumerate(MESSAGES)
    ]


def test_ip_protocol_115_frames_carry_the_exact_datagram(tmp_path: Path) -> None:
    tshark = _tshark()
    pcap = tmp_path / "ip115.pcap"
    with ControlCapture(pcap) as capture:
        for index, (_name, datagram) in enumerate(MESSAGES):
            capture.record_ip(datagram, (LAC4[0], 0), (LNS4[0], 0), START + index)
            capture.record_ip(datagram, (LNS6[0], 0), (LAC6[0], 0), START + index)

    verdict = lab.judge(pcap, tshark, timeout=TSHARK_TIMEOUT)
    assert verdict.problems == [], verdict.problems
    rows = lab.tshark_fields(
        tshark,
        pcap,
        "--disable-protocol",
        "l2tp",
        "-o",
        "ip.check_checksum:TRUE",
        "-e",
        "frame.protocols",
        "-e",
        "ip.proto",
        "-e",
        "ipv6.nxt",
        "-e",
        "ip.src",
        "-e",
        "ipv6.dst",
        "-e",
        "ip.checksum.status",
        "-e",
        "data.data",
    )
    assert len(rows) == 2 * len(MESSAGES)
    for index, (name, datagram) in enumerate(MESSAGES):
        v4, v6 = rows[2 * index], rows[2 * index + 1]
        assert v4 == ["raw:ip:data", "115", "", LAC4[0], "", "1", datagram.hex()]
        assert v6 == ["raw:ipv6:data", "", "115", "", LAC6[0], "", datagram.hex()]
        # No UDP and no zero Session ID in front: the L2TPv2 message starts the IP payload.
        message = parse_message(bytes.fromhex(v4[-1]))
        assert message.name == name


def test_file_header_and_mode(tmp_path: Path) -> None:
    pcap = tmp_path / "c.pcap"
    pcap.write_bytes(b"old contents")
    pcap.chmod(0o644)
    with ControlCapture(pcap):
        pass
    assert pcap.stat().st_mode & 0o777 == 0o600
    magic, major, minor, zone, sigfigs, snaplen, network = struct.unpack("=IHHiIII", pcap.read_bytes())
    assert (magic, major, minor, zone, sigfigs) == (PCAP_MAGIC, 2, 4, 0, 0)
    assert (snaplen, network) == (SNAPLEN, LINKTYPE_RAW) == (65535, 101)
    fresh = tmp_path / "new.pcap"
    ControlCapture(fresh).close()
    assert fresh.stat().st_mode & 0o777 == 0o600


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / "c.pcap").symlink_to(target)
    with pytest.raises(OSError):
        ControlCapture(tmp_path / "c.pcap")
    assert target.read_bytes() == b"keep"


def test_records_are_flushed_every_n_and_on_close(tmp_path: Path) -> None:
    pcap = tmp_path / "c.pcap"
    _, zlb = MESSAGES[-1]
    capture = ControlCapture(pcap, flush_every=3)
    capture.record(zlb, LAC4, LNS4, START)
    capture.record(zlb, LNS4, LAC4, START)
    assert pcap.stat().st_size == 24  # two records still in the buffer
    capture.record(zlb, LAC4, LNS4, START)
    record = 16 + 20 + 8 + len(zlb)
    assert pcap.stat().st_size == 24 + 3 * record == capture.bytes_written
    capture.record(zlb, LAC4, LNS4, START)
    capture.close()
    assert pcap.stat().st_size == 24 + 4 * record
    assert len(read_udp_payloads(pcap)) == 4


def test_the_size_cap_stops_writing_and_logs_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pcap = tmp_path / "c.pcap"
    _, zlb = MESSAGES[-1]
    record = 16 + 20 + 8 + len(zlb)
    caplog.set_level(logging.WARNING, logger="l2tpfast.pcap")
    with ControlCapture(pcap, max_bytes=24 + 2 * record + record // 2) as capture:
        for _ in range(5):
            capture.record(zlb, LAC4, LNS4, START)
        assert (capture.records, capture.dropped, capture.stopped) == (2, 3, True)
    assert pcap.stat().st_size == 24 + 2 * record
    assert len(read_udp_payloads(pcap)) == 2
    warnings = [r for r in caplog.records if r.name == "l2tpfast.pcap"]
    assert len(warnings) == 1 and "limit" in warnings[0].getMessage()


class _FailingFile:
    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_failed_write_stops_the_capture_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    capture = ControlCapture(tmp_path / "c.pcap")
    capture._file = _FailingFile()  # type: ignore[assignment]  # a full disk, on demand
    _, zlb = MESSAGES[-1]
    for _ in range(3):
        capture.record(zlb, LAC4, LNS4, START)  # never raises to the control plane
    capture.close()
    assert capture.stopped and capture.records == 0 and capture.dropped == 3
    errors = [r for r in caplog.records if r.name == "l2tpfast.pcap" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()


def test_records_after_close_are_dropped(tmp_path: Path) -> None:
    capture = ControlCapture(tmp_path / "c.pcap")
    capture.close()
    capture.record(MESSAGES[-1][1], LAC4, LNS4, START)
    assert capture.dropped == 1 and (tmp_path / "c.pcap").stat().st_size == 24


def test_addresses(tmp_path: Path) -> None:
    pcap = tmp_path / "c.pcap"
    with ControlCapture(pcap) as capture:
        # A dual-stack socket's view of an IPv4 peer is recorded as the IPv4 packet it was.
        capture.record(MESSAGES[-1][1], ("::ffff:192.0.2.1", 1701), LNS4, START)
        with pytest.raises(ValueError, match="address families differ"):
            capture.record(MESSAGES[-1][1], LAC4, LNS6, START)
        with pytest.raises(ValueError, match="does not fit"):
            capture.record(bytes(65528), LAC4, LNS4, START)
    (datagram,) = read_udp_payloads(pcap)
    assert datagram.src == ("192.0.2.1", 1701)


def test_ipv6_udp_checksum_is_never_zero() -> None:
    """RFC 8200 8.1: a sum that comes out as zero goes on the wire as 0xffff (RFC 768)."""
    from l2tpfast.runtime.pcap import _checksum, build_packet

    # With the payload 0000 the checksum is the complement of everything else; as the payload,
    # that value makes the sum 0xffff and the checksum zero.
    probe = build_packet(b"\x00\x00", LAC6, LNS6, 17)
    packet = build_packet(probe[46:48], LAC6, LNS6, 17)
    assert packet[46:48] == b"\xff\xff"
    pseudo = packet[8:40] + struct.pack("!I3xB", 10, 17)
    assert _checksum(pseudo + packet[40:]) == 0  # and the receiver's check passes
