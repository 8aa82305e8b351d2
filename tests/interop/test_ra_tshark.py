"""tshark judges the Router Advertisements we build (l2tpfast/ppp/ra.py; RFC 4861 4.2, RFC 8106).

The advertisements go into one classic pcap of link type 229 (LINKTYPE_IPV6: each record is a
bare IPv6 packet, as it travels in PPP protocol 0x0057) and one ``tshark -T pdml`` run decodes
them. Per frame we assert that Wireshark sees a Router Advertisement with hop limit 255, a good
ICMPv6 checksum, the flags, the prefix with L and A, the lifetimes, the MTU and the DNS servers we
put in; over the capture, no malformed packet and no expert item of severity Warning or above.
A control frame with a corrupted checksum shows that tshark does check it.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest
from lab import EXPERT_SEVERITIES, PI_WARN
from pcaputil import LINKTYPE_IPV6

from l2tpfast.ppp.ra import build_router_advertisement, link_local

pytestmark = pytest.mark.interop

IDENTIFIER = bytes.fromhex("0200000000000001")
PEER = link_local(bytes.fromhex("1c2d3e4f50617283"))
#: The prefix of the Router Advertisement header fields in Wireshark (ICMPv6 Neighbor Discovery).
RA_FIELD = "icmpv6.nd.ra."  # codespell:ignore nd

CASES: list[dict[str, Any]] = [
    {"prefix": IPv6Network("2001:db8:1234:5600::/64")},
    {
        "prefix": IPv6Network("2001:db8:ffff:1::/64"),
        "destination": PEER,
        "router_lifetime": 9000,
        "valid_lifetime": 0xFFFFFFFF,
        "preferred_lifetime": 604800,
        "mtu": 1452,
        "dns": (IPv6Address("2001:db8::53"), IPv6Address("2001:db8::35")),
        "dns_lifetime": 600,
        "managed": True,
        "other": True,
    },
    {"prefix": IPv6Network("2001:db8:0:7::/64"), "router_lifetime": 0, "mtu": 1280, "other": True},
]


def write_ipv6_pcap(path: Path, packets: list[bytes]) -> None:
    """Classic pcap, little-endian, microsecond timestamps, link type LINKTYPE_IPV6."""
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_IPV6)]
    for number, packet in enumerate(packets):
        records.append(struct.pack("<IIII", 1_700_000_000, number, len(packet), len(packet)) + packet)
    path.write_bytes(b"".join(records))


def decode(pcap: Path, tshark: str) -> list[ET.Element]:
    with tempfile.TemporaryDirectory(prefix="l2f-wireshark-") as config_dir:
        # An empty personal configuration: no preference of whoever runs the tests changes the tree.
        env = {**os.environ, "WIRESHARK_CONFIG_DIR": config_dir}
        done = subprocess.run(
            [tshark, "-n", "-r", str(pcap), "-T", "pdml"],
            capture_output=True,
            timeout=60,
            env=env,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return ET.fromstring(done.stdout).findall("packet")


def shows(packet: ET.Element, name: str) -> list[str]:
    return [field.get("show") or "" for field in packet.iter("field") if field.get("name") == name]


def show(packet: ET.Element, name: str) -> str:
    values = shows(packet, name)
    assert values, f"tshark shows no {name}"
    return values[0]


def problems(packet: ET.Element) -> list[str]:
    """Malformed marks and expert items of severity Warning or Error in one frame."""
    found = ["malformed" for proto in packet.iter("proto") if proto.get("name") == "_ws.malformed"]
    for item in packet.iter("field"):
        if item.get("name") != "_ws.expert":
            continue
        severity = int(next(iter(shows(item, "_ws.expert.severity")), "0"), 0)
        if severity >= PI_WARN:
            message = next(iter(shows(item, "_ws.expert.message")), item.get("showname") or "")
            found.append(f"{EXPERT_SEVERITIES.get(severity, hex(severity))}: {message}")
    return found


def test_tshark_decodes_our_router_advertisements(tshark: str, tmp_path: Path) -> None:
    packets = [build_router_advertisement(source_identifier=IDENTIFIER, **case) for case in CASES]
    corrupted = bytearray(packets[0])
    corrupted[-1] ^= 0x01  # the last prefix octet: the checksum no longer matches
    pcap = tmp_path / "ra.pcap"
    write_ipv6_pcap(pcap, [*packets, bytes(corrupted)])
    frames = decode(pcap, tshark)
    assert len(frames) == len(CASES) + 1

    for case, frame in zip(CASES, frames[:-1], strict=True):
        assert problems(frame) == [], case
        assert show(frame, "ipv6.hlim") == "255"
        assert show(frame, "ipv6.src") == str(link_local(IDENTIFIER))
        assert show(frame, "ipv6.dst") == str(case.get("destination", "ff02::1"))
        assert show(frame, "icmpv6.type") == "134"
        assert "Router Advertisement" in next(
            f.get("showname") or "" for f in frame.iter("field") if f.get("name") == "icmpv6.type"
        )
        assert show(frame, "icmpv6.checksum.status") == "1"  # Good
        assert show(frame, f"{RA_FIELD}cur_hop_limit") == "64"
        assert show(frame, f"{RA_FIELD}flag.m") == str(int(case.get("managed", False)))
        assert show(frame, f"{RA_FIELD}flag.o") == str(int(case.get("other", False)))
        assert show(frame, f"{RA_FIELD}router_lifetime") == str(case.get("router_lifetime", 1800))
        assert show(frame, "icmpv6.opt.prefix") == str(case["prefix"].network_address)
        assert show(frame, "icmpv6.opt.prefix.length") == "64"
        assert show(frame, "icmpv6.opt.prefix.flag.l") == "1"
        assert show(frame, "icmpv6.opt.prefix.flag.a") == "1"
        assert show(frame, "icmpv6.opt.prefix.valid_lifetime") == str(case.get("valid_lifetime", 86400))
        assert show(frame, "icmpv6.opt.prefix.preferred_lifetime") == str(
            case.get("preferred_lifetime", 14400)
        )
        assert shows(frame, "icmpv6.opt.mtu") == ([str(case["mtu"])] if "mtu" in case else [])
        assert shows(frame, "icmpv6.opt.rdnss") == [str(server) for server in case.get("dns", ())]
        if "dns" in case:
            assert show(frame, "icmpv6.opt.rdnss.lifetime") == str(case["dns_lifetime"])

    control = frames[-1]
    assert show(control, "icmpv6.checksum.status") == "0"  # Bad (Good is 1): tshark does verify it
    assert problems(control), "tshark raised no expert item for a corrupted checksum"
