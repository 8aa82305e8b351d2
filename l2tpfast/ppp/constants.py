"""PPP numbers: protocol fields (RFC 1661 2, 1332, 5072, 1334, 1994), packet codes (RFC 1661 5)
and configuration option types (RFC 1661 6, RFC 1332 3, RFC 1877, RFC 5072 4)."""

from __future__ import annotations

from enum import IntEnum


class Protocol(IntEnum):
    IPV4 = 0x0021
    IPV6 = 0x0057
    IPCP = 0x8021
    IPV6CP = 0x8057
    CCP = 0x80FD
    LCP = 0xC021
    PAP = 0xC023
    LQR = 0xC025
    CHAP = 0xC223


class Code(IntEnum):
    """LCP codes 1-11 (RFC 1661 5); NCPs use 1-7 (RFC 1332 2)."""

    CONFIGURE_REQUEST = 1
    CONFIGURE_ACK = 2
    CONFIGURE_NAK = 3
    CONFIGURE_REJECT = 4
    TERMINATE_REQUEST = 5
    TERMINATE_ACK = 6
    CODE_REJECT = 7
    PROTOCOL_REJECT = 8
    ECHO_REQUEST = 9
    ECHO_REPLY = 10
    DISCARD_REQUEST = 11


class LcpOption(IntEnum):
    """RFC 1661 6 (and RFC 1662 7.1 for ACCM)."""

    MRU = 1
    ACCM = 2
    AUTH_PROTOCOL = 3
    QUALITY_PROTOCOL = 4
    MAGIC_NUMBER = 5
    PFC = 7
    ACFC = 8


class IpcpOption(IntEnum):
    """RFC 1332 3, RFC 1877 1."""

    IP_ADDRESSES = 1
    IP_COMPRESSION_PROTOCOL = 2
    IP_ADDRESS = 3
    PRIMARY_DNS = 129
    PRIMARY_NBNS = 130
    SECONDARY_DNS = 131
    SECONDARY_NBNS = 132


class Ipv6cpOption(IntEnum):
    """RFC 5072 4."""

    INTERFACE_IDENTIFIER = 1
    IPV6_COMPRESSION_PROTOCOL = 2


class PapCode(IntEnum):
    """RFC 1334 2.2."""

    AUTHENTICATE_REQUEST = 1
    AUTHENTICATE_ACK = 2
    AUTHENTICATE_NAK = 3


class ChapCode(IntEnum):
    """RFC 1994 4 (MS-CHAPv2 uses the same codes, RFC 2759 3)."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class ChapAlgorithm(IntEnum):
    """The algorithm octet of the LCP Authentication-Protocol option for CHAP (RFC 1994 3, RFC 2759 2)."""

    MD5 = 5
    MSCHAPV2 = 0x81


class AuthMethod(IntEnum):
    """What a link authenticates with; the values order nothing."""

    PAP = 1
    CHAP_MD5 = 2
    MSCHAPV2 = 3
