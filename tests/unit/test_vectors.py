"""Datagrams captured from xl2tpd and l2tpns (tests/vectors/README.md) through our codec.

Every one parses and re-encodes byte-identically; control messages pass validation; the
compiled batch parser and the reference agree with the per-packet parse on all of them; and
our Challenge Response check accepts what the real peers computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pcaputil import UdpDatagram, read_udp_payloads

import l2tpfast._parse as compiled
from l2tpfast.reference import parse as reference
from l2tpfast.wire.constants import AvpType, MessageType, ParseStatus
from l2tpfast.wire.dtypes import empty_header_array
from l2tpfast.wire.header import build_header, parse_header
from l2tpfast.wire.hiding import check_challenge_response
from l2tpfast.wire.message import parse_message

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
SECRET = b"l2tpfast-test-secret"  # tests/vectors/README.md
FILES = sorted(p.name for p in VECTORS.glob("*.pcap"))


def _datagrams(name: str) -> list[UdpDatagram]:
    return read_udp_payloads(VECTORS / name)


def test_every_vector_file_is_read() -> None:
    assert len(FILES) >= 5
    assert all(_datagrams(name) for name in FILES)


@pytest.mark.parametrize("name", FILES)
def test_vectors_parse_and_reencode_byte_identically(name: str) -> None:
    seen: set[str] = set()
    for datagram in _datagrams(name):
        data = datagram.payload
        header, offset = parse_header(data)
        assert build_header(header, len(data) - offset) + data[offset:] == data, datagram.index
        if not header.is_control:
            seen.add("DATA")
            continue
        message = parse_message(data, secret=SECRET)
        assert message.encode() == data, f"frame {datagram.index}"
        assert message.unrecognized == (), f"frame {datagram.index}: {message.unrecognized}"
        seen.add(message.name)
    assert {"SCCRQ", "SCCRP", "ZLB", "StopCCN"} <= seen


def test_vectors_cover_the_messages_real_peers_send() -> None:
    names = set()
    for name in FILES:
        for datagram in _datagrams(name):
            header, _ = parse_header(datagram.payload)
            names.add(parse_message(datagram.payload).name if header.is_control else "DATA")
    assert names >= {
        "SCCRQ",
        "SCCRP",
        "SCCCN",
        "StopCCN",
        "HELLO",
        "ICRQ",
        "ICRP",
        "ICCN",
        "CDN",
        "ZLB",
        "DATA",
    }


@pytest.mark.parametrize("name", FILES)
def test_batch_parsers_agree_on_vectors(name: str) -> None:
    payloads = [d.payload for d in _datagrams(name)]
    buf = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    lengths = np.array([len(p) for p in payloads], dtype=np.uint32)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.uint32)
    rows = {}
    for impl in (compiled, reference):
        out = empty_header_array(len(payloads))
        assert impl.parse_batch(buf, offsets, lengths, out) == len(payloads)
        rows[impl] = out
    assert rows[compiled].tobytes() == rows[reference].tobytes()
    out = rows[compiled]
    for i, data in enumerate(payloads):
        header, offset = parse_header(data)
        assert out["status"][i] == ParseStatus.OK
        assert bool(out["is_control"][i]) == header.is_control
        assert (out["tunnel_id"][i], out["session_id"][i]) == (header.tunnel_id, header.session_id)
        assert out["payload_offset"][i] == offsets[i] + offset


def test_challenge_responses_of_real_peers_check_out() -> None:
    checked = 0
    for name in FILES:
        secret = b"wrong-secret" if "xl2tpd-lns_badsecret" in name else SECRET
        messages = [
            parse_message(d.payload) for d in _datagrams(name) if parse_header(d.payload)[0].is_control
        ]
        by_type = {m.message_type: m for m in messages if not m.is_zlb}
        for answer, challenger in (
            (MessageType.SCCRP, MessageType.SCCRQ),
            (MessageType.SCCCN, MessageType.SCCRP),
        ):
            if answer in by_type and AvpType.CHALLENGE_RESPONSE in by_type[answer]:
                challenge = by_type[challenger][AvpType.CHALLENGE]
                response = by_type[answer][AvpType.CHALLENGE_RESPONSE]
                assert check_challenge_response(answer, secret, challenge, response), name
                assert not check_challenge_response(answer, b"not-it", challenge, response)
                checked += 1
    assert checked >= 5
