"""tests/pcaputil.py: write -> read round trips, every supported pcap variant, and the captured vectors.

The vectors in tests/vectors/ were captured from xl2tpd and l2tpns by ci/capture_vectors.sh (see
tests/vectors/README.md). Here they are read with pcaputil and decoded by a minimal parser local
to this file, so the checks do not depend on l2tpfast itself: message sequence, ports, and RFC 2661
4.2 tunnel authentication (Challenge Response = MD5(message type, secret, challenge)).
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from pcaputil import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    UdpDatagram,
    read_udp_payloads,
    write_udp_pcap,
)
from tools import require_tool

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
#: The tunnel secret of the captures (tests/vectors/README.md); BAD_SECRET is the LAC's in *_badsecret.
SECRET = b"l2tpfast-test-secret"
BAD_SECRET = b"wrong-secret"

V4A = ("192.0.2.1", 1701)
V4B = ("192.0.2.2", 1701)
V6A = ("2001:db8::1", 1701)
V6B = ("2001:db8::2", 40000)

SAMPLE: list[tuple[bytes, tuple[str, int], tuple[str, int]]] = [
    (b"\xc8\x02\x00\x0c\x00\x01\x00\x00\x00\x00\x00\x00", V4A, V4B),  # a ZLB
    (b"", V4B, V4A),
    (b"odd", V4A, V4B),
    (bytes(range(256)) * 4, V4B, V4A),
    (bytes.fromhex("0002 1234 5678 ff03 c021 0901 0008 00000000"), V6A, V6B),  # LCP Echo-Request
    (b"v6 odd length", V6B, V6A),
]


def _frames(path: Path) -> list[tuple[int, bytes]]:
    """(linktype, frame) of every record of a little-endian microsecond pcap we wrote."""
    data = path.read_bytes()
    (linktype,) = struct.unpack_from("<I", data, 20)
    frames = []
    offset = 24
    while offset < len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        frames.append((linktype, data[offset + 16 : offset + 16 + caplen]))
        offset += 16 + caplen
    return frames


def _pcap(frames: list[bytes], linktype: int, *, endian: str = "<", nanoseconds: bool = False) -> bytes:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for number, frame in enumerate(frames):
        out.append(struct.pack(endian + "IIII", 1000 + number, 999, len(frame), len(frame) + 7))
        out.append(frame)
    return b"".join(out)


def _checksum(data: bytes) -> int:
    data += b"\x00" * (len(data) % 2)
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _triples(datagrams: list[UdpDatagram]) -> list[tuple[bytes, tuple[str, int], tuple[str, int]]]:
    return [(d.payload, d.src, d.dst) for d in datagrams]


# --- write -> read ------------------------------------------------------------------------------


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_ETHERNET])
def test_round_trip(tmp_path: Path, linktype: int) -> None:
    path = tmp_path / "rt.pcap"
    assert write_udp_pcap(path, iter(SAMPLE), linktype=linktype) == len(SAMPLE)
    datagrams = read_udp_payloads(path)
    assert _triples(datagrams) == SAMPLE
    assert [d.index for d in datagrams] == list(range(1, len(SAMPLE) + 1))


def test_written_file_is_reproducible(tmp_path: Path) -> None:
    write_udp_pcap(tmp_path / "a.pcap", SAMPLE)
    write_udp_pcap(str(tmp_path / "b.pcap"), SAMPLE)
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()


def test_written_checksums_verify(tmp_path: Path) -> None:
    path = tmp_path / "sum.pcap"
    write_udp_pcap(path, SAMPLE)
    for (_, packet), (payload, src, dst) in zip(_frames(path), SAMPLE, strict=True):
        src_ip, dst_ip = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
        if src_ip.version == 4:
            header, segment = packet[:20], packet[20:]
            assert _checksum(header) == 0xFFFF  # a correct header sums to all ones
            pseudo = src_ip.packed + dst_ip.packed + struct.pack("!BBH", 0, 17, len(segment))
        else:
            segment = packet[40:]
            pseudo = src_ip.packed + dst_ip.packed + struct.pack("!I3xB", len(segment), 17)
        assert struct.unpack_from("!H", segment, 6)[0] != 0, "UDP checksum must be present"
        assert _checksum(pseudo + segment) == 0xFFFF
        assert segment[8:] == payload


@pytest.mark.interop
@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_ETHERNET])
def test_tshark_finds_checksums_good(tmp_path: Path, linktype: int) -> None:
    tshark = require_tool("tshark", "judges the checksums of the pcaps we write")
    path = tmp_path / "judged.pcap"
    write_udp_pcap(path, SAMPLE, linktype=linktype)
    checks = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
    fields = ["-T", "fields", "-e", "ip.checksum.status", "-e", "udp.checksum.status"]
    result = subprocess.run(
        [tshark, "-n", "-r", str(path), *checks, *fields],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # status 1 is "Good"; IPv6 has no header checksum, hence the empty first field there
    assert result.stdout.splitlines() == ["1\t1"] * 4 + ["\t1"] * 2
    expert = subprocess.run(
        [tshark, "-n", "-r", str(path), *checks, "-Y", "_ws.expert || _ws.malformed"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert expert.stdout == ""


def test_write_rejects_mixed_families_and_unknown_linktype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="address families"):
        write_udp_pcap(tmp_path / "x.pcap", [(b"", V4A, V6A)])
    with pytest.raises(ValueError, match="link type"):
        write_udp_pcap(tmp_path / "x.pcap", [(b"", V4A, V4B)], linktype=LINKTYPE_LINUX_SLL)
    with pytest.raises(ValueError, match="does not fit"):
        write_udp_pcap(tmp_path / "x.pcap", [(bytes(65510), V4A, V4B)])


ENCAPSULATIONS = [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW]

# --- the reader's variants ----------------------------------------------------------------------


def _ip_packets(tmp_path: Path) -> list[bytes]:
    path = tmp_path / "raw.pcap"
    write_udp_pcap(path, SAMPLE)
    return [frame for _, frame in _frames(path)]


def _ethertype(packet: bytes) -> bytes:
    return b"\x08\x00" if packet[0] >> 4 == 4 else b"\x86\xdd"


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nanoseconds", [False, True])
@pytest.mark.parametrize("linktype", ENCAPSULATIONS)
def test_read_variants(tmp_path: Path, endian: str, nanoseconds: bool, linktype: int) -> None:
    frames = []
    for packet in _ip_packets(tmp_path):
        if linktype == LINKTYPE_ETHERNET:
            frames.append(bytes(12) + _ethertype(packet) + packet)
        elif linktype == LINKTYPE_LINUX_SLL:
            frames.append(struct.pack("!HHH8s", 4, 1, 6, bytes(8)) + _ethertype(packet) + packet)
        elif linktype == LINKTYPE_LINUX_SLL2:
            frames.append(_ethertype(packet) + struct.pack("!HIHBB8s", 0, 3, 1, 4, 6, bytes(8)) + packet)
        else:
            frames.append(packet)
    path = tmp_path / "variant.pcap"
    path.write_bytes(_pcap(frames, linktype, endian=endian, nanoseconds=nanoseconds))
    assert _triples(read_udp_payloads(path)) == SAMPLE


def test_read_ipv4_and_ipv6_link_types(tmp_path: Path) -> None:
    packets = _ip_packets(tmp_path)
    v4 = [p for p in packets if p[0] >> 4 == 4]
    v6 = [p for p in packets if p[0] >> 4 == 6]
    (tmp_path / "v4.pcap").write_bytes(_pcap(v4 + v6, LINKTYPE_IPV4))
    (tmp_path / "v6.pcap").write_bytes(_pcap(v6 + v4, LINKTYPE_IPV6))
    assert _triples(read_udp_payloads(tmp_path / "v4.pcap")) == SAMPLE[:4]
    assert _triples(read_udp_payloads(tmp_path / "v6.pcap")) == SAMPLE[4:]


def test_read_skips_what_is_not_whole_udp(tmp_path: Path) -> None:
    packets = _ip_packets(tmp_path)
    v4, v6 = packets[2], packets[4]
    tcp = v4[:9] + b"\x06" + v4[10:]
    fragment = v4[:6] + b"\x20\x00" + v4[8:]  # More Fragments
    truncated = v4[:-1]  # the snap length cut the UDP payload
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    vlan = bytes(12) + b"\x81\x00\x00\x05" + b"\x08\x00" + v4
    padded = bytes(12) + b"\x08\x00" + v4 + bytes(20)  # Ethernet trailer padding
    # IPv6 with a Destination Options header before UDP, and an atomic fragment header
    dest_opts = v6[:6] + b"\x3c" + v6[7:40] + b"\x11\x00" + bytes(6) + v6[40:]
    dest_opts = dest_opts[:4] + struct.pack("!H", len(dest_opts) - 40) + dest_opts[6:]
    eth = [bytes(12) + _ethertype(p) + p for p in (tcp, fragment, truncated, dest_opts)]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(_pcap([*eth, arp, vlan, padded], LINKTYPE_ETHERNET))
    datagrams = read_udp_payloads(path)
    assert [(d.index, d.payload) for d in datagrams] == [(4, SAMPLE[4][0]), (6, b"odd"), (7, b"odd")]
    assert read_udp_payloads(path, port=40000) == [datagrams[0]]


def test_read_rejects_other_formats(tmp_path: Path) -> None:
    (tmp_path / "a.pcapng").write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(ValueError, match="pcapng"):
        read_udp_payloads(tmp_path / "a.pcapng")
    (tmp_path / "b.pcap").write_bytes(bytes(40))
    with pytest.raises(ValueError, match="not a pcap"):
        read_udp_payloads(tmp_path / "b.pcap")
    (tmp_path / "c.pcap").write_bytes(_pcap([b"\x45" * 30], LINKTYPE_RAW)[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_udp_payloads(tmp_path / "c.pcap")


def test_unknown_link_type_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(_pcap(_ip_packets(tmp_path), 147))
    assert read_udp_payloads(tmp_path / "x.pcap") == []


# --- the captured vectors -----------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """Just enough of an L2TPv2 message to check the vectors."""

    index: int
    is_control: bool
    tunnel_id: int
    session_id: int
    avps: tuple[tuple[int, int, int, bytes], ...]  # (flags, vendor_id, attribute type, value)

    @property
    def name(self) -> str:
        if not self.is_control:
            return "DATA"
        if not self.avps:
            return "ZLB"
        return MESSAGE_NAMES[int.from_bytes(self.avps[0][3], "big")]

    def value(self, attribute: int) -> bytes:
        return next(v for _, vendor, t, v in self.avps if vendor == 0 and t == attribute)


MESSAGE_NAMES = {1: "SCCRQ", 2: "SCCRP", 3: "SCCCN", 4: "StopCCN", 6: "HELLO"}
MESSAGE_NAMES |= {10: "ICRQ", 11: "ICRP", 12: "ICCN", 14: "CDN"}
CHALLENGE, CHALLENGE_RESPONSE = 11, 13


def _parse(datagram: UdpDatagram) -> Message:
    data = datagram.payload
    flags, length = struct.unpack_from("!H", data, 0)[0], len(data)
    assert flags & 0x000F == 2, "L2TPv2"
    pos = 2
    if flags & 0x4000:
        length = struct.unpack_from("!H", data, pos)[0]
        pos += 2
    tunnel_id, session_id = struct.unpack_from("!HH", data, pos)
    pos += 4
    if flags & 0x0800:
        pos += 4
    if flags & 0x0200:
        pos += 2 + struct.unpack_from("!H", data, pos)[0]
    avps = []
    if flags & 0x8000:
        assert length == len(data)
        while pos < length:
            avp_flags, vendor_id, attribute = struct.unpack_from("!HHH", data, pos)
            avp_length = avp_flags & 0x03FF
            avps.append((avp_flags & 0xFC00, vendor_id, attribute, data[pos + 6 : pos + avp_length]))
            pos += avp_length
        assert pos == length
    return Message(datagram.index, bool(flags & 0x8000), tunnel_id, session_id, tuple(avps))


LAC, LNS = "192.0.2.1", "192.0.2.2"
#: file -> the acceptable (LAC's, LNS's) sequences of non-ZLB messages. How the two directions
#: interleave, and where ZLBs fall, depends on timing and changes with every capture; the order
#: each end sends in does not, except that both pppds fail in the xl2tpd-xl2tpd pair and either
#: end may send the CDN first.
SEQUENCES: dict[str, set[tuple[str, str]]] = {
    "xl2tpd-lac_l2tpns-lns.pcap": {("SCCRQ SCCCN ICRQ ICCN CDN StopCCN", "SCCRP ICRP DATA")},
    "xl2tpd-lac_l2tpns-lns_hello.pcap": {("SCCRQ SCCCN ICRQ ICCN CDN HELLO StopCCN", "SCCRP ICRP DATA")},
    "xl2tpd-lac_l2tpns-lns_badsecret.pcap": {("SCCRQ StopCCN", "SCCRP")},
    "xl2tpd-lac_xl2tpd-lns_hidden.pcap": {
        ("SCCRQ SCCCN ICRQ ICCN CDN StopCCN", "SCCRP ICRP"),
        ("SCCRQ SCCCN ICRQ ICCN StopCCN", "SCCRP ICRP CDN"),
    },
    "xl2tpd-lac_xl2tpd-lns_badsecret.pcap": {("SCCRQ SCCCN ICRQ", "SCCRP StopCCN")},
}

#: file -> {message that answers a Challenge: the secret its sender used}
RESPONSES = {
    "xl2tpd-lac_l2tpns-lns.pcap": {"SCCRP": SECRET},
    "xl2tpd-lac_l2tpns-lns_hello.pcap": {"SCCRP": SECRET},
    # l2tpns answers right; the LAC, holding BAD_SECRET, rejects the answer with StopCCN
    "xl2tpd-lac_l2tpns-lns_badsecret.pcap": {"SCCRP": SECRET},
    "xl2tpd-lac_xl2tpd-lns_hidden.pcap": {"SCCRP": SECRET, "SCCCN": SECRET},
    "xl2tpd-lac_xl2tpd-lns_badsecret.pcap": {"SCCCN": BAD_SECRET},
}


def _vector(name: str) -> list[Message]:
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"{path} is missing; `bash ci/capture_vectors.sh` captures it")
    return [_parse(d) for d in read_udp_payloads(path)]


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_vector_message_sequence(name: str) -> None:
    datagrams = read_udp_payloads(VECTORS / name)
    assert {d.src[1] for d in datagrams} | {d.dst[1] for d in datagrams} == {1701}
    assert {(d.src[0], d.dst[0]) for d in datagrams} == {(LAC, LNS), (LNS, LAC)}
    messages = [_parse(d) for d in datagrams]
    assert [m.index for m in messages] == list(range(1, len(messages) + 1))
    without_zlb = tuple(
        " ".join(
            m.name for m, d in zip(messages, datagrams, strict=True) if d.src[0] == end and m.name != "ZLB"
        )
        for end in (LAC, LNS)
    )
    assert without_zlb in SEQUENCES[name]
    assert messages[0].name == "SCCRQ" and messages[-1].name == "ZLB"  # the last StopCCN is acked
    # neither peer hides an AVP of its own, even with "hidden bit = yes" (README.md)
    assert not any(flags & 0x4000 for m in messages for flags, *_ in m.avps)


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_vector_tunnel_authentication(name: str) -> None:
    messages = {m.name: m for m in _vector(name) if m.name in ("SCCRQ", "SCCRP", "SCCCN")}
    challenged_by = {"SCCRP": "SCCRQ", "SCCCN": "SCCRP"}
    for answer, secret in RESPONSES[name].items():
        challenge = messages[challenged_by[answer]].value(CHALLENGE)
        message_type = 2 if answer == "SCCRP" else 3
        expected = hashlib.md5(bytes([message_type]) + secret + challenge).digest()
        assert messages[answer].value(CHALLENGE_RESPONSE) == expected, f"{name}: {answer}"


def test_vector_data_message_is_lcp_configure_request() -> None:
    (data,) = [m for m in _vector("xl2tpd-lac_l2tpns-lns.pcap") if not m.is_control]
    payload = read_udp_payloads(VECTORS / "xl2tpd-lac_l2tpns-lns.pcap")[data.index - 1].payload
    assert payload[:2] == b"\x00\x02"  # no L, S, O or P bit
    assert payload[6:10] == bytes.fromhex("ff03c021")  # PPP address and control, LCP
    assert payload[10] == 1  # Configure-Request


def test_vectors_round_trip_through_writer(tmp_path: Path) -> None:
    for name in SEQUENCES:
        datagrams = read_udp_payloads(VECTORS / name)
        write_udp_pcap(tmp_path / name, _triples(datagrams))
        assert _triples(read_udp_payloads(tmp_path / name)) == _triples(datagrams)
