"""RADIUS numbers as IntEnums: packet codes (RFC 2865 3, RFC 2866 3, RFC 5176 2.3) and attribute values
(RFC 2865 5.6, 5.7, 5.41; RFC 2866 5.1, 5.6, 5.10; RFC 5176 3.5).

The names match l2tpfast's dictionary file (``dictionary`` beside this module), which pyrad reads
to encode and decode attributes; these enums are what Python code compares against.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """The Code field of a RADIUS packet."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


class ServiceType(enum.IntEnum):
    """RFC 2865 5.6 (17: RFC 5176 3.2)."""

    LOGIN = 1
    FRAMED = 2
    AUTHORIZE_ONLY = 17


class FramedProtocol(enum.IntEnum):
    """RFC 2865 5.7."""

    PPP = 1


class NasPortType(enum.IntEnum):
    """RFC 2865 5.41 (a few of the values)."""

    ASYNC = 0
    SYNC = 1
    VIRTUAL = 5
    ETHERNET = 15
    XDSL = 16


class AcctStatusType(enum.IntEnum):
    """RFC 2866 5.1."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


class AcctAuthentic(enum.IntEnum):
    """RFC 2866 5.6: how the user was authenticated."""

    RADIUS = 1
    LOCAL = 2
    REMOTE = 3


class AcctTerminateCause(enum.IntEnum):
    """RFC 2866 5.10."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    LOST_SERVICE = 3
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    PORT_ERROR = 8
    NAS_ERROR = 9
    NAS_REQUEST = 10
    NAS_REBOOT = 11
    PORT_UNNEEDED = 12
    PORT_PREEMPTED = 13
    PORT_SUSPENDED = 14
    SERVICE_UNAVAILABLE = 15
    CALLBACK = 16
    USER_ERROR = 17
    HOST_REQUEST = 18


class ErrorCause(enum.IntEnum):
    """RFC 5176 3.5: Error-Cause values of Disconnect/CoA ACKs (2xx) and NAKs (4xx, 5xx)."""

    RESIDUAL_SESSION_CONTEXT_REMOVED = 201
    INVALID_EAP_PACKET = 202
    UNSUPPORTED_ATTRIBUTE = 401
    MISSING_ATTRIBUTE = 402
    NAS_IDENTIFICATION_MISMATCH = 403
    INVALID_REQUEST = 404
    UNSUPPORTED_SERVICE = 405
    UNSUPPORTED_EXTENSION = 406
    INVALID_ATTRIBUTE_VALUE = 407
    ADMINISTRATIVELY_PROHIBITED = 501
    REQUEST_NOT_ROUTABLE = 502
    SESSION_CONTEXT_NOT_FOUND = 503
    SESSION_CONTEXT_NOT_REMOVABLE = 504
    OTHER_PROXY_PROCESSING_ERROR = 505
    RESOURCES_UNAVAILABLE = 506
    REQUEST_INITIATED = 507
    MULTIPLE_SESSION_SELECTION_UNSUPPORTED = 508


#: RFC 2548: the Vendor-Id of Microsoft's vendor-specific attributes.
VENDOR_MICROSOFT = 311
#: RFC 4679 4: the Vendor-Id of the DSL Forum (ADSL Forum) attributes.
VENDOR_ADSL_FORUM = 3561
