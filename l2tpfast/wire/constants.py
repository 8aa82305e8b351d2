"""Numbers of RFC 2661 as IntEnums: header bits (3.1), message types (3.2),
AVP types (4.4), Result and Error Codes (4.4.2), and the parse status codes
shared by the pure-Python and the compiled header parsers."""

from __future__ import annotations

import enum

# RFC 2661 3.1: the first 16 bits of every header.
FLAG_T = 0x8000  # control message
FLAG_L = 0x4000  # Length present
FLAG_S = 0x0800  # Ns, Nr present
FLAG_O = 0x0200  # Offset Size present
FLAG_P = 0x0100  # priority
VER_MASK = 0x000F
#: Every bit of the first word that 3.1 marks "x" (reserved): zero on send, ignored on receipt.
RESERVED_MASK = 0x30F0 | 0x0400
L2TP_VERSION = 2
L2F_VERSION = 1  # RFC 2661 3.1: Ver=1 is L2F (RFC 2341), discarded
CONTROL_HEADER_LEN = 12  # flags, length, tunnel, session, ns, nr
DEFAULT_PORT = 1701
IP_PROTO_L2TP = 115

AVP_HEADER_LEN = 6
AVP_MAX_LEN = 1023  # 10-bit length field (RFC 2661 4.1)
AVP_FLAG_M = 0x8000
AVP_FLAG_H = 0x4000
AVP_RESERVED_MASK = 0x3C00
AVP_LENGTH_MASK = 0x03FF

VENDOR_IETF = 0
VENDOR_MICROSOFT = 311
VENDOR_BROADBAND_FORUM = 3561  # DSL Forum / Broadband Forum (TR-101 line ID AVPs)


class MessageType(enum.IntEnum):
    """RFC 2661 3.2."""

    SCCRQ = 1
    SCCRP = 2
    SCCCN = 3
    StopCCN = 4
    HELLO = 6
    OCRQ = 7
    OCRP = 8
    OCCN = 9
    ICRQ = 10
    ICRP = 11
    ICCN = 12
    CDN = 14
    WEN = 15
    SLI = 16


#: Messages that concern the whole tunnel; the rest belong to a session (RFC 2661 4.1).
TUNNEL_MESSAGES = frozenset(
    {MessageType.SCCRQ, MessageType.SCCRP, MessageType.SCCCN, MessageType.StopCCN, MessageType.HELLO}
)


class AvpType(enum.IntEnum):
    """IETF (vendor 0) attribute types: RFC 2661 4.4, plus 46 from RFC 3145."""

    MESSAGE_TYPE = 0
    RESULT_CODE = 1
    PROTOCOL_VERSION = 2
    FRAMING_CAPABILITIES = 3
    BEARER_CAPABILITIES = 4
    TIE_BREAKER = 5
    FIRMWARE_REVISION = 6
    HOST_NAME = 7
    VENDOR_NAME = 8
    ASSIGNED_TUNNEL_ID = 9
    RECEIVE_WINDOW_SIZE = 10
    CHALLENGE = 11
    Q931_CAUSE_CODE = 12
    CHALLENGE_RESPONSE = 13
    ASSIGNED_SESSION_ID = 14
    CALL_SERIAL_NUMBER = 15
    MINIMUM_BPS = 16
    MAXIMUM_BPS = 17
    BEARER_TYPE = 18
    FRAMING_TYPE = 19
    CALLED_NUMBER = 21
    CALLING_NUMBER = 22
    SUB_ADDRESS = 23
    TX_CONNECT_SPEED = 24
    PHYSICAL_CHANNEL_ID = 25
    INITIAL_RECEIVED_LCP_CONFREQ = 26
    LAST_SENT_LCP_CONFREQ = 27
    LAST_RECEIVED_LCP_CONFREQ = 28
    PROXY_AUTHEN_TYPE = 29
    PROXY_AUTHEN_NAME = 30
    PROXY_AUTHEN_CHALLENGE = 31
    PROXY_AUTHEN_ID = 32
    PROXY_AUTHEN_RESPONSE = 33
    CALL_ERRORS = 34
    ACCM = 35
    RANDOM_VECTOR = 36
    PRIVATE_GROUP_ID = 37
    RX_CONNECT_SPEED = 38
    SEQUENCING_REQUIRED = 39
    PPP_DISCONNECT_CAUSE_CODE = 46  # RFC 3145


class BbfAvpType(enum.IntEnum):
    """Broadband Forum (vendor 3561) AVPs seen from carrier LACs (TR-101)."""

    AGENT_CIRCUIT_ID = 1
    AGENT_REMOTE_ID = 2


class StopCCNResult(enum.IntEnum):
    """RFC 2661 4.4.2: Result Code values for StopCCN."""

    GENERAL_REQUEST = 1
    GENERAL_ERROR = 2
    CHANNEL_EXISTS = 3
    NOT_AUTHORIZED = 4
    BAD_PROTOCOL_VERSION = 5
    SHUTTING_DOWN = 6
    FSM_ERROR = 7


class CDNResult(enum.IntEnum):
    """RFC 2661 4.4.2: Result Code values for CDN."""

    LOSS_OF_CARRIER = 1
    GENERAL_ERROR = 2
    ADMINISTRATIVE = 3
    TEMPORARY_NO_FACILITIES = 4
    PERMANENT_NO_FACILITIES = 5
    INVALID_DESTINATION = 6
    NO_CARRIER = 7
    BUSY = 8
    NO_DIAL_TONE = 9
    TIMEOUT = 10
    NO_FRAMING = 11


class GeneralError(enum.IntEnum):
    """RFC 2661 4.4.2: General Error Codes."""

    NO_ERROR = 0
    NO_CONTROL_CONNECTION = 1
    BAD_LENGTH = 2
    OUT_OF_RANGE = 3
    NO_RESOURCES = 4
    INVALID_SESSION_ID = 5
    VENDOR_ERROR = 6
    TRY_ANOTHER = 7
    UNKNOWN_MANDATORY_AVP = 8


class ProxyAuthenType(enum.IntEnum):
    """RFC 2661 4.4.5: Proxy Authen Type values."""

    TEXTUAL = 1
    PPP_CHAP = 2
    PPP_PAP = 3
    NO_AUTHENTICATION = 4
    MSCHAPV1 = 5


class FramingCapability(enum.IntFlag):
    """RFC 2661 4.4.3 Framing Capabilities and 4.4.4 Framing Type bits."""

    SYNC = 0x1
    ASYNC = 0x2


class BearerCapability(enum.IntFlag):
    """RFC 2661 4.4.3 Bearer Capabilities and 4.4.4 Bearer Type bits."""

    DIGITAL = 0x1
    ANALOG = 0x2


class ParseStatus(enum.IntEnum):
    """Outcome of parsing one datagram's header; one code per drop reason.

    Shared by :mod:`l2tpfast.wire.header`, :mod:`l2tpfast.reference` and the
    compiled ``l2tpfast._parse`` (mirrored in ``src_pyx/l2tp.pxd``).
    """

    OK = 0
    #: Shorter than the header its flags announce (or than 6 octets).
    TRUNCATED = 1
    #: Ver is not 2 (RFC 2661 3.1: discarded).
    BAD_VERSION = 2
    #: Ver is 1: an L2F packet (RFC 2661 3.1: discarded).
    L2F = 3
    #: The Length field disagrees with the datagram's length.
    BAD_LENGTH = 4
    #: T=1 without L=1 and S=1, or with O=1 (RFC 2661 3.1).
    BAD_CONTROL_FLAGS = 5
    #: Offset Size points past the end of the datagram.
    BAD_OFFSET = 6


class DeliveryAction(enum.IntEnum):
    """Where the data path sends a received payload (``DELIVERY_DTYPE.action``)."""

    #: A control message (T=1): the whole datagram goes to the control plane.
    CONTROL = 1
    #: An IPv4 or IPv6 packet (PPP protocol 0x0021 or 0x0057) for the session's TUN device.
    TUN = 2
    #: A PPP frame to forward on another session (L2TP switching).
    SWITCH = 3
    #: A PPP frame for the PPP engine (LCP, authentication, IPCP, ...).
    PPP = 4


class DropReason(enum.IntEnum):
    """Why the data path dropped a datagram; 1..6 are the :class:`ParseStatus` codes."""

    TRUNCATED = 1
    BAD_VERSION = 2
    L2F = 3
    BAD_LENGTH = 4
    BAD_CONTROL_FLAGS = 5
    BAD_OFFSET = 6
    #: No session (Tunnel ID, Session ID) in the table.
    UNKNOWN_SESSION = 7
    #: The datagram did not come from the tunnel's peer address and port.
    WRONG_PEER = 8
    #: Ns at or before the last delivered one (RFC 2661 5.4): a duplicate or too late.
    DUPLICATE = 9
    #: Out of order, but the shared reorder pool is full.
    POOL_FULL = 10
    #: The payload is too short to hold a PPP protocol field.
    SHORT_PPP = 11
    #: An IPv4 packet for the TUN device whose source is not the session's address
    #: (``DataPath.set_source``): the subscriber tried to send with another address.
    SPOOFED_SOURCE = 12


#: Session targets chosen by the control plane (``DataPath.add_session(target=...)``).
class SessionTarget(enum.IntEnum):
    #: Every PPP frame to the PPP engine (the session is not up at the IP level yet).
    PPP = 0
    #: IP packets to a TUN device, the other PPP frames to the PPP engine.
    TUN = 1
    #: Every PPP frame to another session (L2TP switching).
    SWITCH = 2


class SessionFlag(enum.IntFlag):
    """How the data path sends on a session (``add_session(flags=...)``); mirrored in _dataplane.pyx."""

    #: Our data carries Ns (RFC 2661 5.4: the LNS decided, or Sequencing Required was negotiated).
    SEQ_TX = 0x01
    #: A LAC sends Ns once the peer's data carries them (RFC 2661 5.4).
    SEQ_TX_FOLLOW = 0x02
    #: PPP negotiated Address-and-Control-Field-Compression: send no FF 03 (RFC 1661 6.6).
    ACFC = 0x04
    #: PPP negotiated Protocol-Field-Compression: a one-octet protocol when possible (RFC 1661 6.5).
    PFC = 0x08


#: The longest data header plus PPP framing the data path writes: flags, Tunnel and Session ID,
#: Ns, Nr, FF 03 and a two-octet protocol.
MAX_DATA_HEADER = 14
